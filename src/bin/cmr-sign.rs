fn main() -> std::process::ExitCode {
    cmr::cli::sign::main()
}
