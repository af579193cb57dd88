"""llama.cpp (through llama-cpp-python) on the same GGUF, measured the way the engine bench measures
ours: prefill tokens/s for a 512-token prompt, greedy decode tokens/s for 128 tokens after a short
chat prompt and after the 512-token prompt. Prints one JSON line per figure.

usage: python llama_cpp_bench.py MODEL.gguf THREADS
"""
import ctypes
import json
import statistics
import sys
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama

path, threads = sys.argv[1], int(sys.argv[2])
m = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)


def out(metric, value):
    print(json.dumps({"engine": "llama.cpp", "metric": metric, "value": round(value, 2)}), flush=True)


long = m.tokenize(("The quick brown fox jumps over the lazy dog. " * 60).encode(), add_bos=False)[:512]
chat = m.tokenize(b"<|im_start|>user\nTell me a long story about a dragon.<|im_end|>\n<|im_start|>assistant\n", add_bos=False, special=True)


def prefill():
    m.reset()
    t = time.perf_counter()
    m.eval(long)
    return 512 / (time.perf_counter() - t)


def decode(prompt, n=128):
    m.reset()
    m.eval(prompt)
    eos = m.token_eos()
    t = None
    for i in range(n):
        ptr = llama_cpp.llama_get_logits_ith(m._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(m.n_vocab(),)).copy()
        logits[eos] = -1e30  # ignore EOS, as the engine bench does
        tok = int(logits.argmax())
        if i == 1:
            t = time.perf_counter()
        m.eval([tok])
    return (n - 2) / (time.perf_counter() - t)


prefill()
out("prefill_tok_s_512", statistics.median(prefill() for _ in range(3)))
out("decode_tok_s_short_ctx", statistics.median(decode(chat) for _ in range(3)))
out("decode_tok_s_512_ctx", statistics.median(decode(long) for _ in range(3)))
