import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;

/**
 * The access log (nginx's "combined" format, so goaccess and friends can read it) and the
 * error log. Each line is written whole and at once, as nginx does.
 */
final class Log implements AutoCloseable {
    private static final DateTimeFormatter LOCAL_TIME = DateTimeFormatter.ofPattern("dd/MMM/yyyy:HH:mm:ss Z", Locale.US);

    private final PrintStream access; // null when access_log is off
    private final PrintStream errors;
    private final boolean accessIsFile, errorsIsFile; // opened here, so closed here

    Log(Config config) throws IOException {
        this.accessIsFile = !config.accessLog().equals("off") && !config.accessLog().equals("-");
        this.errorsIsFile = !config.errorLog().equals("-");
        this.access = switch (config.accessLog()) {
            case "off" -> null;
            case "-" -> new PrintStream(new FileOutputStream(java.io.FileDescriptor.out), false, StandardCharsets.UTF_8);
            default -> open(config.accessLog());
        };
        try {
            this.errors = errorsIsFile ? open(config.errorLog()) : System.err;
        } catch (IOException e) {
            if (accessIsFile) access.close(); // don't leak the one that did open
            throw e;
        }
    }

    private static PrintStream open(String path) throws IOException {
        OutputStream out = new FileOutputStream(path, true);
        return new PrintStream(out, false, StandardCharsets.UTF_8);
    }

    /**
     * {@code $remote_addr - - [$time_local] "$request" $status $body_bytes_sent
     * "$http_referer" "$http_user_agent"}
     */
    void access(InetSocketAddress peer, String requestLine, int status, long bodyBytes, String referer, String agent) {
        if (access == null) return;
        String line = Forwarding.ip(peer) + " - - [" + LOCAL_TIME.format(ZonedDateTime.now()) + "] \""
                + escape(requestLine) + "\" " + status + " " + bodyBytes + " \"" + escape(referer) + "\" \""
                + escape(agent) + "\"\n";
        byte[] bytes = line.getBytes(StandardCharsets.UTF_8);
        synchronized (access) {
            access.write(bytes, 0, bytes.length);
            access.flush();
        }
    }

    void error(String message) {
        String line = ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME) + " " + message + "\n";
        synchronized (errors) {
            errors.print(line);
            errors.flush();
        }
    }

    /**
     * Flushes both logs and closes the files this Log opened. Standard output and standard
     * error are only flushed: they belong to the process, which may still print to them
     * (and a second proxy in the same JVM may still log there). A line logged after this
     * by a connection still finishing is dropped (PrintStream ignores writes once closed).
     */
    @Override
    public void close() {
        if (access != null) {
            synchronized (access) {
                if (accessIsFile) access.close();
                else access.flush();
            }
        }
        synchronized (errors) {
            if (errorsIsFile) errors.close();
            else errors.flush();
        }
    }

    /** Like nginx, escape '"', '\' and bytes outside printable ASCII as \xHH. */
    private static String escape(String s) {
        if (s == null || s.isEmpty()) return "-";
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') b.append(String.format("\\x%02X", (int) c & 0xff));
            else b.append(c);
        }
        return b.toString();
    }
}
