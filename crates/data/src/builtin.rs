//! The built-in prompt set, used when no dataset is given: short, medium and long prompts in
//! several categories, including other languages and edge cases.

/// `(category, prompt)` pairs. Long and edge-case prompts are built by [`builtin_prompts`].
const PROMPTS: &[(&str, &str)] = &[
    ("short", "Hello!"),
    ("short", "What is 2 + 2?"),
    ("short", "Name three primary colors."),
    ("short", "Translate 'good morning' into French."),
    ("short", "What is the capital of Japan?"),
    ("medium", "Explain in a few sentences why the sky appears blue during the day and red at sunset."),
    ("medium", "Summarise the main causes of the First World War in one paragraph suitable for a high-school student."),
    ("medium", "Describe how a hash map works, including what happens when two keys collide."),
    ("medium", "Write a short product description for a waterproof hiking backpack with a 30-litre capacity."),
    ("code", "Write a Python function that returns the n-th Fibonacci number using iteration, with a docstring."),
    ("code", "Implement binary search in Rust over a sorted slice of i32 and return the index if found."),
    ("code", "Explain what this SQL does: SELECT department, AVG(salary) FROM employees GROUP BY department HAVING AVG(salary) > 50000;"),
    ("code", "Write a bash one-liner that counts the lines of every .rs file under the current directory."),
    ("reasoning", "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much does the ball cost? Explain step by step."),
    ("reasoning", "If all bloops are razzies and all razzies are lazzies, are all bloops definitely lazzies? Justify your answer."),
    ("reasoning", "Three friends split a bill of $87 so that the first pays twice as much as the second and the third pays $15. How much does each pay?"),
    ("creative", "Write a four-line poem about a lighthouse keeper who has never seen the sea in daylight."),
    ("creative", "Invent a name and a one-sentence backstory for a dragon who is afraid of heights."),
    ("multilingual", "请用三句话介绍一下长城的历史。"),
    ("multilingual", "Explique en deux phrases ce qu'est la photosynthèse."),
    ("multilingual", "¿Cuáles son los beneficios de aprender un segundo idioma?"),
    ("multilingual", "日本の四季について簡単に説明してください。"),
    ("multilingual", "Объясните, что такое машинное обучение, простыми словами."),
    ("edge", "?"),
    ("edge", "   "),
    ("edge", "Repeat the word 'echo' exactly five times, separated by commas, and nothing else."),
    ("edge", "{\"json\": [1, 2, 3], \"nested\": {\"key\": \"value with \\\"quotes\\\" and \\n newlines\"}}"),
    ("edge", "Emoji test: 🚀🔥✨ — what do these three symbols usually mean in a chat message?"),
];

const LONG_PARAGRAPH: &str = "Large language model serving systems balance latency against throughput. \
Batching many requests together lets the accelerator reuse each weight it loads, which raises the \
number of tokens produced per second, but every request in the batch then waits for the slowest \
step. Schedulers such as continuous batching admit new requests between decoding steps, and paged \
key-value caches keep memory fragmentation low so that more sequences fit at once. ";

/// The built-in prompts as `(category, text)`, long ones included.
pub fn builtin_prompts() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = PROMPTS.iter().map(|(c, p)| (c.to_string(), p.to_string())).collect();
    for (reps, label) in [(4, "long"), (12, "long"), (40, "edge")] {
        let text = format!("{}\nSummarise the text above in three bullet points.", LONG_PARAGRAPH.repeat(reps));
        v.push((label.to_owned(), text));
    }
    v
}
