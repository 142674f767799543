//! The unit tests of the table1 example's grid and selection, results file, statistics and
//! page (`examples/support/table1_*.rs`), run here because `cargo test --workspace` does not
//! run an example's tests.

#[allow(dead_code)]
#[path = "../examples/support/table1_grid.rs"]
mod table1_grid;
#[allow(dead_code)]
#[path = "../examples/support/table1_page.rs"]
mod table1_page;
#[allow(dead_code)]
#[path = "../examples/support/table1_results.rs"]
mod table1_results;
