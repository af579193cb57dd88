//! The real engine behind the HTTP front: applies the model's chat template, tokenizes, maps
//! OpenAI sampling parameters, and forwards the engine's events to the response stream.

use crate::generator::{GenError, GenEvent, GenRequest, Generator};
use inferbench_engine::{Engine, EngineError, Event, EventSink, Request, SamplingParams};
use tokio::sync::mpsc;

/// A [`Generator`] over a running [`Engine`].
#[derive(Debug)]
pub struct EngineGenerator {
    engine: Engine,
    name: String,
}

impl EngineGenerator {
    /// Serves `engine` under the model name `name`.
    pub fn new(engine: Engine, name: impl Into<String>) -> Self {
        Self { engine, name: name.into() }
    }

    /// The engine (for its statistics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

struct ChannelSink(mpsc::Sender<GenEvent>);

impl EventSink for ChannelSink {
    fn send(&mut self, ev: Event) -> bool {
        let ev = match ev {
            Event::Token { text, .. } => GenEvent::Token(text),
            Event::Finished { reason, prompt_tokens, completion_tokens } => GenEvent::Finish {
                reason: reason.as_str(),
                prompt_tokens: prompt_tokens as u32,
                completion_tokens: completion_tokens as u32,
                cached_tokens: None,
            },
            Event::Failed(m) => GenEvent::Error(m),
        };
        // The channel holds every event a request can produce, so it is never full.
        self.0.try_send(ev).is_ok()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

fn gen_error(e: EngineError) -> GenError {
    match e {
        EngineError::BadInput(m) => GenError::BadRequest(m),
        EngineError::TooLarge(m) => GenError::TooLarge(m),
        EngineError::Unavailable(m) => GenError::Unavailable(m),
        other => GenError::Internal(other.to_string()),
    }
}

impl Generator for EngineGenerator {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn tokenizer(&self) -> Option<&inferbench_data::tokenizer::Tokenizer> {
        Some(self.engine.tokenizer())
    }

    fn generate(&self, req: GenRequest) -> Result<mpsc::Receiver<GenEvent>, GenError> {
        let tok = self.engine.tokenizer();
        let text = match &req.messages {
            Some(msgs) => match tok.chat_template() {
                Some(t) => t.render(msgs, true).map_err(|e| GenError::BadRequest(format!("cannot apply the chat template: {e}")))?,
                None => req.prompt.clone(),
            },
            None => req.prompt.clone(),
        };
        let prompt = tok.encode(&text);
        let top_k = req.top_k.filter(|&k| k > 0).map_or(0, |k| k as usize);
        let sampling =
            SamplingParams { temperature: req.temperature.unwrap_or(0.0), top_p: req.top_p.unwrap_or(1.0), top_k, seed: req.seed };
        let r = Request {
            prompt,
            max_tokens: req.max_tokens as usize,
            min_tokens: req.min_tokens as usize,
            ignore_eos: req.ignore_eos,
            sampling,
            stop: req.stop,
        };
        let (tx, rx) = mpsc::channel(r.max_tokens + 4);
        self.engine.submit(r, Box::new(ChannelSink(tx))).map_err(gen_error)?;
        Ok(rx)
    }

    fn metrics_text(&self) -> String {
        self.engine.stats().prometheus(&self.name)
    }
}
