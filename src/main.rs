fn main() -> std::process::ExitCode {
    jans_exporter::cli::main()
}
