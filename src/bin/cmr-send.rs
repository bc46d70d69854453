fn main() -> std::process::ExitCode {
    cmr::cli::send::main()
}
