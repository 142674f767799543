//! The `in_memory` example built as a separate crate: it trains on samples it makes in
//! memory, saves, reloads and predicts with confidences, through the public API only.

#[path = "../../in_memory.rs"]
mod in_memory;

fn main() -> anyhow::Result<()> {
    in_memory::main()
}
