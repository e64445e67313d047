fn main() {
    eprintln!("catalog: not built yet");
}
