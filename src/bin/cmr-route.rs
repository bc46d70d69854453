fn main() -> std::process::ExitCode {
    cmr::cli::route::main()
}
