fn main() -> std::process::ExitCode {
    cmr::cli::keyx::main()
}
