import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;

/**
 * The status listener ({@code status_listen = 127.0.0.1:8081}, off by default): a small
 * server of its own, apart from the main listeners, whose traffic it reports and never
 * joins. Three pages, each read off counters owned by what they count ({@link Connections},
 * {@link Counters} in each {@link Upstreams.Peer}, {@link BufferPool}):
 *
 * <ul>
 * <li>{@code /status}: nginx's stub_status lines exactly, then one line per upstream server
 *     (group, address, up or down, pooled connections active and idle, requests, failures,
 *     the last error and when, the recent response time).
 * <li>{@code /status.json}: the same as JSON.
 * <li>{@code /metrics}: the Prometheus text exposition format (version 0.0.4), for a
 *     Prometheus server to scrape.
 * </ul>
 *
 * One request per connection, answered with {@code Connection: close}, on a virtual thread;
 * at most {@link #MAX_CONNECTIONS} at once, each given {@link #TIMEOUT_MS} to send its
 * request. Reading counts nothing on the request path: a page is made when asked for.
 */
final class Status implements AutoCloseable {
    static final int MAX_CONNECTIONS = 16;
    static final int TIMEOUT_MS = 5000;
    private static final int MAX_REQUEST = 8192;

    private final ServerSocket server;
    private final Connections connections;
    private final Map<String, Upstreams> groups;
    private final BufferPool buffers;
    private final Semaphore slots = new Semaphore(MAX_CONNECTIONS);

    private Status(ServerSocket server, Connections connections, Map<String, Upstreams> groups, BufferPool buffers) {
        this.server = server;
        this.connections = connections;
        this.groups = groups;
        this.buffers = buffers;
        Thread.ofVirtual().name("status " + server.getLocalSocketAddress()).start(this::accept);
    }

    /** Binds status_listen and starts serving; null when it is off. A non-loopback address gets a warning. */
    static Status start(Config config, Connections connections, Map<String, Upstreams> groups, BufferPool buffers,
                        Log log) throws IOException {
        InetSocketAddress address = config.statusListen();
        if (address == null) return null;
        ServerSocket server = new ServerSocket();
        try {
            server.setReuseAddress(true);
            // reuse_port: the process that replaces this one binds it too (README, restarting)
            if (config.reusePort()) server.setOption(java.net.StandardSocketOptions.SO_REUSEPORT, true);
            server.bind(address, 64);
        } catch (IOException e) {
            server.close();
            throw e;
        }
        if (!address.getAddress().isLoopbackAddress()) {
            log.warn("status_listen " + Config.hostPort(address) + " is not a loopback address: anyone who can reach it "
                    + "sees the upstreams and their errors");
        }
        log.notice("status on " + Config.hostPort((InetSocketAddress) server.getLocalSocketAddress())
                + ": /status, /status.json, /metrics");
        return new Status(server, connections, groups, buffers);
    }

    /** The address bound (with the real port when the configuration said 0). */
    InetSocketAddress address() {
        return (InetSocketAddress) server.getLocalSocketAddress();
    }

    private void accept() {
        while (!server.isClosed()) {
            Socket s;
            try {
                s = server.accept();
            } catch (IOException e) {
                if (server.isClosed()) return;
                continue; // out of descriptors, most likely: the next accept may do
            }
            if (!slots.tryAcquire()) {
                closeQuietly(s);
                continue;
            }
            Thread.ofVirtual().start(() -> {
                try (s) {
                    serve(s);
                } catch (IOException | RuntimeException e) {
                    // the client went away, or sent nothing in time: nothing to report
                } finally {
                    slots.release();
                }
            });
        }
    }

    private void serve(Socket s) throws IOException {
        s.setSoTimeout(TIMEOUT_MS);
        String line = requestLine(new BufferedInputStream(s.getInputStream(), 512));
        String[] parts = line.split(" ");
        OutputStream out = s.getOutputStream();
        if (parts.length != 3 || !parts[2].startsWith("HTTP/1.")) {
            out.write(response(400, "text/plain", "400 Bad Request\n", false));
            return;
        }
        boolean head = parts[0].equals("HEAD");
        if (!head && !parts[0].equals("GET")) {
            out.write(response(405, "text/plain", "405 Method Not Allowed\n", false));
            return;
        }
        String path = parts[1].indexOf('?') < 0 ? parts[1] : parts[1].substring(0, parts[1].indexOf('?'));
        byte[] answer = switch (path) {
            case "/status" -> response(200, "text/plain", text(), head);
            case "/status.json" -> response(200, "application/json", json(), head);
            case "/metrics" -> response(200, "text/plain; version=0.0.4; charset=utf-8", metrics(), head);
            default -> response(404, "text/plain", "404 Not Found: /status, /status.json or /metrics\n", head);
        };
        out.write(answer);
    }

    /** The request's first line, after reading its whole head (at most MAX_REQUEST bytes). */
    private static String requestLine(InputStream in) throws IOException {
        StringBuilder head = new StringBuilder();
        while (head.length() < MAX_REQUEST) {
            int b = in.read();
            if (b < 0) break;
            head.append((char) b);
            int n = head.length();
            if (b == '\n' && n >= 2 && (head.charAt(n - 2) == '\n' || n >= 4 && head.substring(n - 4).equals("\r\n\r\n"))) break;
        }
        int end = head.indexOf("\n");
        return (end < 0 ? head.toString() : head.substring(0, end)).strip();
    }

    private static byte[] response(int status, String type, String body, boolean head) {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        String h = "HTTP/1.1 " + status + " " + HttpError.reasonPhrase(status) + "\r\nDate: " + Forwarding.HttpDate.now()
                + "\r\nContent-Type: " + type + "\r\nContent-Length: " + b.length
                + "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
        byte[] out = new byte[h.length() + (head ? 0 : b.length)];
        System.arraycopy(h.getBytes(StandardCharsets.ISO_8859_1), 0, out, 0, h.length());
        if (!head) System.arraycopy(b, 0, out, h.length(), b.length);
        return out;
    }

    // ---- what the pages say -----------------------------------------------------------

    /** Client connections now: active (open), reading a head, past it, and the rest waiting. */
    private record Clients(long active, long reading, long writing, long waiting) {}

    private Clients clients() {
        long active = connections.count();
        long reading = Math.max(0, connections.reading.sum());
        long writing = Math.max(0, connections.writing.sum());
        return new Clients(active, reading, writing, Math.max(0, active - reading - writing));
    }

    /** One upstream server as the pages show it. */
    private record Server(String group, String address, boolean up, int active, int idle, long requests, long failures,
                          String lastError, long lastErrorAt, long responseMillis, Map<Integer, Long> codes) {}

    private List<Server> servers() {
        List<Server> out = new ArrayList<>();
        groups.forEach((name, u) -> {
            for (Upstreams.Peer p : u.peers()) {
                int[] pool = u.pool(p);
                Counters.Server c = p.counters;
                out.add(new Server(name, p.label(), p.up(), pool[0], pool[1], c.requests.sum(), c.failures.sum(),
                        c.lastError, c.lastErrorAt, c.recentMillis(), c.byStatus()));
            }
        });
        return out;
    }

    /** nginx's stub_status, to the byte (its trailing spaces too), then a line per upstream server. */
    String text() {
        Clients c = clients();
        StringBuilder out = new StringBuilder()
                .append("Active connections: ").append(c.active()).append(" \n")
                .append("server accepts handled requests\n")
                .append(' ').append(connections.accepts.sum()).append(' ').append(connections.handled.sum())
                .append(' ').append(connections.requests.sum()).append(" \n")
                .append("Reading: ").append(c.reading()).append(" Writing: ").append(c.writing())
                .append(" Waiting: ").append(c.waiting()).append(" \n");
        for (Server s : servers()) {
            out.append("upstream ").append(s.group()).append(' ').append(s.address().replace(' ', '_'))
                    .append(s.up() ? " up" : " down")
                    .append(" active=").append(s.active()).append(" idle=").append(s.idle())
                    .append(" requests=").append(s.requests()).append(" failures=").append(s.failures())
                    .append(" last_error=\"").append(s.lastError() == null ? "" : LogFormat.escape(s.lastError())).append('"')
                    .append(" last_error_at=").append(s.lastError() == null ? "-" : Instant.ofEpochMilli(s.lastErrorAt()))
                    .append(" response_time_ms=").append(s.responseMillis() < 0 ? "-" : Long.toString(s.responseMillis()))
                    .append('\n');
        }
        return out.toString();
    }

    String json() {
        Clients c = clients();
        StringBuilder out = new StringBuilder("{\"connections\":{")
                .append("\"active\":").append(c.active()).append(",\"reading\":").append(c.reading())
                .append(",\"writing\":").append(c.writing()).append(",\"waiting\":").append(c.waiting())
                .append(",\"accepted\":").append(connections.accepts.sum())
                .append(",\"handled\":").append(connections.handled.sum()).append("},")
                .append("\"requests\":").append(connections.requests.sum()).append(",\"upstreams\":{");
        List<Server> servers = servers();
        boolean firstGroup = true;
        for (String group : groups.keySet()) {
            out.append(firstGroup ? "" : ",").append(quote(group)).append(":[");
            firstGroup = false;
            boolean first = true;
            for (Server s : servers) {
                if (!s.group().equals(group)) continue;
                out.append(first ? "" : ",").append("{\"server\":").append(quote(s.address()))
                        .append(",\"state\":\"").append(s.up() ? "up" : "down").append('"')
                        .append(",\"active\":").append(s.active()).append(",\"idle\":").append(s.idle())
                        .append(",\"requests\":").append(s.requests()).append(",\"failures\":").append(s.failures())
                        .append(",\"last_error\":").append(s.lastError() == null ? "null" : quote(s.lastError()))
                        .append(",\"last_error_at\":")
                        .append(s.lastError() == null ? "null" : quote(Instant.ofEpochMilli(s.lastErrorAt()).toString()))
                        .append(",\"response_time_ms\":").append(s.responseMillis() < 0 ? "null" : s.responseMillis())
                        .append('}');
                first = false;
            }
            out.append(']');
        }
        return out.append("}}\n").toString();
    }

    /** The Prometheus text exposition format: # HELP and # TYPE, then the samples of each metric. */
    String metrics() {
        Clients c = clients();
        StringBuilder out = new StringBuilder();
        family(out, "proxy_requests_total", "counter", "Client requests read (stub_status's requests).");
        out.append("proxy_requests_total ").append(connections.requests.sum()).append('\n');
        family(out, "proxy_connections_accepted_total", "counter", "Client connections accepted.");
        out.append("proxy_connections_accepted_total ").append(connections.accepts.sum()).append('\n');
        family(out, "proxy_connections_handled_total", "counter", "Client connections admitted (within max_connections).");
        out.append("proxy_connections_handled_total ").append(connections.handled.sum()).append('\n');
        family(out, "proxy_connections", "gauge", "Client connections now, by state.");
        for (var e : Map.of("active", c.active(), "reading", c.reading(), "writing", c.writing(), "waiting", c.waiting())
                .entrySet().stream().sorted(Map.Entry.comparingByKey()).toList()) {
            out.append("proxy_connections{state=\"").append(e.getKey()).append("\"} ").append(e.getValue()).append('\n');
        }
        List<Server> servers = servers();
        family(out, "proxy_upstream_up", "gauge", "1 if the upstream server gets requests, 0 if down by max_fails or health check.");
        for (Server s : servers) out.append("proxy_upstream_up").append(labels(s)).append(' ').append(s.up() ? 1 : 0).append('\n');
        family(out, "proxy_upstream_requests_total", "counter", "Attempts at each upstream server, by status (0: no response).");
        for (Server s : servers) {
            s.codes().forEach((code, n) -> out.append("proxy_upstream_requests_total{group=\"").append(label(s.group()))
                    .append("\",server=\"").append(label(s.address())).append("\",code=\"").append(code).append("\"} ")
                    .append(n).append('\n'));
        }
        family(out, "proxy_upstream_failures_total", "counter", "Failed attempts (refused, timed out, reset), as max_fails counts them.");
        for (Server s : servers) out.append("proxy_upstream_failures_total").append(labels(s)).append(' ').append(s.failures()).append('\n');
        family(out, "proxy_upstream_response_seconds", "histogram", "Time from asking for an upstream connection to the response head, per attempt.");
        groups.forEach((name, u) -> {
            long[] counts = u.responseTimes.cumulative();
            String g = "group=\"" + label(name) + "\"";
            for (int i = 0; i < Counters.Histogram.BOUNDS.length; i++) {
                out.append("proxy_upstream_response_seconds_bucket{").append(g).append(",le=\"")
                        .append(Counters.Histogram.BOUNDS[i]).append("\"} ").append(counts[i]).append('\n');
            }
            out.append("proxy_upstream_response_seconds_bucket{").append(g).append(",le=\"+Inf\"} ")
                    .append(counts[counts.length - 1]).append('\n');
            out.append("proxy_upstream_response_seconds_sum{").append(g).append("} ").append(u.responseTimes.sumSeconds()).append('\n');
            out.append("proxy_upstream_response_seconds_count{").append(g).append("} ").append(counts[counts.length - 1]).append('\n');
        });
        family(out, "proxy_memory_budget_bytes", "gauge", "buffer_memory: bytes of transfer buffers made (used) and still to make (free).");
        long used = buffers.made();
        out.append("proxy_memory_budget_bytes{state=\"used\"} ").append(used).append('\n');
        out.append("proxy_memory_budget_bytes{state=\"free\"} ").append(Math.max(0, buffers.budget() - used)).append('\n');
        return out.toString();
    }

    private static void family(StringBuilder out, String name, String type, String help) {
        out.append("# HELP ").append(name).append(' ').append(help).append('\n');
        out.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    }

    private static String labels(Server s) {
        return "{group=\"" + label(s.group()) + "\",server=\"" + label(s.address()) + "\"}";
    }

    /** A label value: backslash, double quote and newline escaped, as the format requires. */
    private static String label(String v) {
        return v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }

    /** A JSON string (RFC 8259 7). */
    private static String quote(String s) {
        StringBuilder out = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            if (ch == '"' || ch == '\\') out.append('\\').append(ch);
            else if (ch < 0x20) out.append(String.format("\\u%04x", (int) ch));
            else out.append(ch);
        }
        return out.append('"').toString();
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // gone already
        }
    }

    @Override
    public void close() {
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
