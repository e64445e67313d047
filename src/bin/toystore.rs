fn main() {
    eprintln!("toystore: not built yet");
}
