fn main() -> std::process::ExitCode {
    aelab::cli::main()
}
