fn main() {
    eprintln!("frontend: not built yet");
}
