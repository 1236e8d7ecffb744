fn main() {
    std::process::exit(bosun::run());
}
