fn main() -> std::process::ExitCode {
    cmr::cli::recv::main()
}
