import LMTPHookCLI

@main
struct Entrypoint {
    static func main() async {
        LMTPHookCommand.prepareProcess()
        await LMTPHookCommand.main()
    }
}
