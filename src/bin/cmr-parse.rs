fn main() -> std::process::ExitCode {
    cmr::cli::parse::main()
}
