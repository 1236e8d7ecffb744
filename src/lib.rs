//! bosun: the command-line edge.
pub fn run() -> i32 {
    0
}
