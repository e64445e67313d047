fn main() {
    eprintln!("order: not built yet");
}
