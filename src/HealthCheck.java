import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Active health checks: {@code health_check = /healthz} (nginx offers them only in its
 * commercial edition; HAProxy: {@code option httpchk}). Every health_check_interval, each
 * server gets a {@code GET /healthz} on a connection of its own (never one of the pool's),
 * all servers at once, each on its own virtual thread, so one that hangs delays no other.
 *
 * <ul>
 * <li>A status of 2xx or 3xx passes. Any other status, a connection refused or reset, an
 *     answer that is not an HTTP/1.x status line, or no status line within connect_timeout +
 *     read_timeout fails.
 * <li>{@link #FAILS} failures in a row take a server out of rotation: {@link Upstreams}
 *     gives it no requests. {@link #PASSES} passes in a row bring it back. The error log
 *     says each, once; a single failure or pass between others changes nothing.
 * <li>When every server is out by health check, requests go to them all the same, as if
 *     there were no checks (max_fails still applies): the checks can't tell a good server
 *     from a bad one then (a broken /healthz, say), and trying is better than a certain 502.
 *     nginx does the same when every server is down by max_fails.
 * <li>Off when health_check is empty (the default): no thread, and Upstreams chooses as it
 *     did without them.
 * </ul>
 *
 * Each address of a server given by name is checked on its own (see {@link Resolver}); a
 * new address starts in rotation, as every server does at start.
 */
final class HealthCheck implements AutoCloseable {
    /** Failed checks in a row that take a server out of rotation. */
    static final int FAILS = 2;
    /** Passed checks in a row that bring it back (the log line says "twice"). */
    static final int PASSES = 2;
    /** The longest status line read ("HTTP/1.1 200 OK" and a reason); longer fails the check. */
    static final int MAX_STATUS_LINE = 1024;

    private static final Pattern STATUS_LINE = Pattern.compile("HTTP/1\\.[01] ([0-9]{3})(?: .*)?");

    private final Upstreams upstreams;
    private final Config config;
    private final Log log;
    private final Thread thread;
    // Per server: the checks in a row whose outcome went against its state (failures while
    // in rotation, passes while out). Guarded by this.
    private final Map<Upstreams.Peer, Integer> against = new HashMap<>();

    private HealthCheck(Config config, Upstreams upstreams, Log log) {
        this.config = config;
        this.upstreams = upstreams;
        this.log = log;
        this.thread = Thread.ofVirtual().name("health check").start(this::run);
    }

    /** Starts checking every server, or returns null when health_check is empty. */
    static HealthCheck start(Config config, Upstreams upstreams, Log log) {
        return config.healthCheck().isEmpty() ? null : new HealthCheck(config, upstreams, log);
    }

    private void run() {
        try {
            while (true) {
                checkAll();
                Thread.sleep(config.healthCheckInterval());
            }
        } catch (InterruptedException e) {
            // close: shutting down
        }
    }

    /** One round: every server at once; returns when each has its outcome. */
    private void checkAll() throws InterruptedException {
        List<Upstreams.Peer> peers = upstreams.peers();
        synchronized (this) {
            against.keySet().retainAll(peers); // forget the addresses a name no longer has
        }
        List<Thread> checks = new ArrayList<>();
        try {
            for (Upstreams.Peer p : peers) {
                checks.add(Thread.ofVirtual().name("health check " + p.label()).start(() -> checkOne(p)));
            }
            for (Thread t : checks) t.join();
        } finally {
            for (Thread t : checks) t.interrupt(); // on close: a check under way ends too (its socket closes)
        }
    }

    private void checkOne(Upstreams.Peer p) {
        String failure = check(p);
        if (!Thread.currentThread().isInterrupted()) outcome(p, failure); // cut short by close: no outcome
    }

    /** One check of one server: null if it passed, else why it failed ("503", "Connection refused"). */
    private String check(Upstreams.Peer p) {
        Duration limit = config.connectTimeout().plus(config.readTimeout());
        long deadline = System.nanoTime() + limit.toNanos();
        try (Socket socket = new Socket()) {
            socket.connect(p.server.address(), (int) config.connectTimeout().toMillis());
            String request = "GET " + config.healthCheck() + " HTTP/1.1\r\nHost: " + p.server.hostPort()
                    + "\r\nUser-Agent: proxy/" + Proxy.VERSION + " (health check)\r\nConnection: close\r\n\r\n";
            socket.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            Matcher status = STATUS_LINE.matcher(statusLine(socket, deadline));
            if (!status.matches()) return "not an HTTP/1.x status line";
            int code = Integer.parseInt(status.group(1));
            return code >= 200 && code < 400 ? null : status.group(1);
        } catch (SocketTimeoutException e) {
            return "no answer within " + limit.toMillis() + " ms";
        } catch (IOException e) {
            return e.getMessage() != null ? e.getMessage() : e.toString();
        }
    }

    /** The response's first line, without its CRLF: at most MAX_STATUS_LINE bytes, before the deadline. */
    private static String statusLine(Socket socket, long deadline) throws IOException {
        InputStream in = new BufferedInputStream(socket.getInputStream(), 256);
        StringBuilder line = new StringBuilder();
        while (true) {
            long left = deadline - System.nanoTime();
            if (left <= 0) throw new SocketTimeoutException();
            socket.setSoTimeout((int) Math.max(1, left / 1_000_000));
            int b = in.read();
            if (b < 0) throw new EOFException("closed before a status line");
            if (b == '\n') break;
            if (line.length() == MAX_STATUS_LINE) throw new IOException("status line over " + MAX_STATUS_LINE + " bytes");
            line.append((char) b);
        }
        if (line.isEmpty() || line.charAt(line.length() - 1) != '\r') throw new IOException("status line without CRLF");
        return line.substring(0, line.length() - 1);
    }

    /** Counts a check's outcome; FAILS or PASSES in a row against the server's state change it. */
    private synchronized void outcome(Upstreams.Peer p, String failure) {
        boolean passed = failure == null;
        if (passed == p.healthy()) {
            against.remove(p); // as it is: the run against it, if any, is broken
            return;
        }
        int inARow = against.merge(p, 1, Integer::sum);
        if (inARow < (passed ? PASSES : FAILS)) return;
        against.remove(p);
        if (!upstreams.healthy(p, passed)) return;
        if (passed) log.notice("upstream " + p.label() + " passed its health check twice, back in rotation");
        else log.warn("upstream " + p.label() + " failed its health check (GET " + config.healthCheck() + ": " + failure
                + "), out of rotation");
    }

    /** Stops the checks, the ones under way too. */
    @Override
    public void close() {
        thread.interrupt();
    }
}
