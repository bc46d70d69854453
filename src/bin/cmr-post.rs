fn main() -> std::process::ExitCode {
    cmr::cli::post::main()
}
