import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The command line, as nginx's: run with a configuration file, or check one and exit.
 *
 * <pre>
 *   java -cp out Proxy FILE            run with FILE
 *   java -cp out Proxy --check FILE    check FILE and exit (nginx -t)
 *   java -cp out Proxy --version       print the version and exit
 *   java -cp out Proxy --help          print the usage and exit
 * </pre>
 *
 * The exit status: {@link #OK}, {@link #INVALID} (the configuration is invalid, or the proxy
 * cannot start), {@link #USAGE} (the arguments are wrong). {@link #parse} only reads the
 * arguments; {@link Proxy#main} does what they ask.
 *
 * <p>{@code --check} is meant for the moment before a restart: it reports every problem in the
 * file, one line each, and then checks what it can about this machine without changing
 * anything. It never binds the listen ports: during a restart the running proxy holds them,
 * and a check that tried to bind would fail exactly then (nginx -t doesn't bind either). Nor
 * does it create the log files, as nginx -t does: it checks that each one could be opened
 * for append (it exists and is writable, or its directory is), so a check leaves nothing
 * behind. Both are checked as the user who runs the check.
 */
final class CommandLine {
    static final int OK = 0;
    static final int INVALID = 1;
    static final int USAGE = 2;

    private static final String FORMS = """
            usage: java -cp out Proxy FILE            run the proxy with the configuration FILE
                   java -cp out Proxy --check FILE    check FILE, list every problem, and exit
                   java -cp out Proxy --version       print the version and exit
                   java -cp out Proxy --help          print this help and exit
            """;

    private static final String HELP = FORMS + """

            FILE is a .properties file; conf/proxy.properties lists every key with its
            default and what it does. A bad file stops the proxy at start with one line
            per problem.

            --check reads FILE as the proxy would and reports every problem, one line
            each, then checks that the listen addresses belong to this machine and that
            the log files could be opened for append. It binds no port and creates no
            file, so it can run while the proxy it will replace holds the ports. It also
            prints the warnings a start would log (TLSv1 or TLSv1.1 in ssl_protocols, an
            expired certificate, a max_connections over what this JVM's heap holds);
            they don't fail the check.

            exit status: 0 ok; 1 the configuration is invalid, or the proxy cannot start;
                         2 the command line is wrong
            """;

    private CommandLine() {}

    /** What the arguments ask for. */
    sealed interface Command {}

    /** Run the proxy with this file. */
    record Run(Path file) implements Command {}

    /** Check this file and exit. */
    record Check(Path file) implements Command {}

    /** A text to print, to standard output or standard error, and the exit status after it. */
    record Answer(String text, boolean toStdout, int status) implements Command {
        int print() {
            (toStdout ? System.out : System.err).print(text);
            return status;
        }
    }

    static Command parse(String[] args) {
        if (args.length == 0) return wrong("no configuration file given");
        String first = args[0];
        int expected = first.equals("--check") ? 2 : 1;
        if (first.startsWith("-") && !List.of("--check", "--version", "--help").contains(first)) {
            return wrong("unknown option '" + first + "'");
        }
        if (args.length > expected) return wrong("too many arguments: " + String.join(" ", args));
        if (args.length < expected) return wrong(first + " needs a FILE");
        return switch (first) {
            case "--help" -> new Answer(HELP, true, OK);
            case "--version" -> new Answer(version() + "\n", true, OK);
            case "--check" -> new Check(Path.of(args[1]));
            default -> new Run(Path.of(first));
        };
    }

    private static Answer wrong(String problem) {
        return new Answer("proxy: " + problem + "\n" + FORMS, false, USAGE);
    }

    /** "proxy 0.9.0 (Java 25.0.3+9-LTS, Eclipse Adoptium)": ours, and the runtime's. */
    static String version() {
        return "proxy " + Proxy.VERSION + " (Java " + Runtime.version() + ", " + System.getProperty("java.vendor") + ")";
    }

    /**
     * Checks the file and prints the outcome to {@code out}, in nginx -t's words: every
     * warning and every problem on a line of its own, then a summary line. Returns the exit
     * status.
     */
    static int check(Path file, PrintStream out) {
        List<String> problems = new ArrayList<>();
        List<String> warnings;
        try {
            Config config = Config.load(file);
            out.println("proxy: the configuration file " + file + " syntax is ok");
            warnings = config.warnings();
            problems.addAll(onThisMachine(file, config));
        } catch (Config.Invalid e) {
            warnings = e.warnings();
            problems.addAll(e.problems());
        }
        // What a start would log at warn; as in nginx -t, a warning alone passes the check.
        for (String warning : warnings) out.println("proxy: [warn] " + file + ": " + warning);
        for (String problem : problems) out.println("proxy: " + problem);
        if (problems.isEmpty()) {
            out.println("proxy: configuration file " + file + " test is successful");
            return OK;
        }
        out.println("proxy: configuration file " + file + " test failed: " + problems.size()
                + (problems.size() == 1 ? " problem" : " problems"));
        return INVALID;
    }

    /** What would stop a valid configuration from starting here, found without side effects. */
    private static List<String> onThisMachine(Path file, Config config) {
        List<String> problems = new ArrayList<>();
        for (InetSocketAddress address : config.listen()) { // one listed twice: Config.from says so
            if (!isOfThisMachine(address.getAddress())) {
                problems.add(file + ": key 'listen': cannot listen on " + Config.hostPort(address)
                        + ": not an address of this machine");
            }
        }
        for (String key : List.of("access_log", "error_log")) {
            String path = key.equals("access_log") ? config.accessLog() : config.errorLog();
            if (path.equals("-") || path.equals("off")) continue;
            String problem = cannotAppendTo(path);
            if (problem != null) problems.add(file + ": key '" + key + "': " + problem);
        }
        return problems;
    }

    /**
     * Whether a socket could be bound to this address: the wildcard, a loopback address (all
     * of 127.0.0.0/8 on Linux), or one of the machine's interfaces. Asking the interfaces
     * binds nothing.
     */
    private static boolean isOfThisMachine(InetAddress address) {
        if (address.isAnyLocalAddress() || address.isLoopbackAddress()) return true;
        try {
            return NetworkInterface.getByInetAddress(address) != null;
        } catch (SocketException e) {
            return true; // can't tell: the start will
        }
    }

    /**
     * Why the log at this path could not be opened for append, or null if it could: it is a
     * writable file, or it doesn't exist yet and its directory is writable. Nothing is opened
     * or created.
     */
    private static String cannotAppendTo(String path) {
        Path log;
        try {
            log = Path.of(path).toAbsolutePath();
        } catch (InvalidPathException e) {
            return "not a file path: " + e.getReason();
        }
        if (Files.isDirectory(log)) return "cannot open " + path + " for append: it is a directory";
        if (Files.exists(log)) return Files.isWritable(log) ? null : "cannot open " + path + " for append: permission denied";
        Path dir = log.getParent();
        if (!Files.isDirectory(dir)) return "cannot create " + path + ": no directory " + dir;
        return Files.isWritable(dir) ? null : "cannot create " + path + ": the directory " + dir + " is not writable";
    }
}
