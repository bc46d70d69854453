fn main() -> std::process::ExitCode {
    cmr::cli::sim::main()
}
