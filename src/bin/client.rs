fn main() {
    eprintln!("client: not built yet");
}
