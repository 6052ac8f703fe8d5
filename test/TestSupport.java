import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What the tests share: a real backend that records the raw bytes it receives, a raw-socket
 * client, a proxy started in-process on port 0, and the parser driven from literal bytes.
 * Everything waits on events with a bound ({@link #WAIT}); nothing sleeps to synchronise.
 */
final class TestSupport {
    static final Duration WAIT = Duration.ofSeconds(10);

    private TestSupport() {}

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.ISO_8859_1);
    }

    static String text(byte[] b) {
        return new String(b, StandardCharsets.ISO_8859_1);
    }

    // ---- the proxy ------------------------------------------------------------------

    /**
     * The one directory for the files tests write (each in-process proxy's error log, the
     * configuration files of child processes), deleted with them when the test JVM exits.
     */
    static final Path TEMP = tempDirectory("proxy-test");

    /** A new temporary directory, deleted with what it holds when the JVM exits. */
    static Path tempDirectory(String prefix) {
        try {
            Path dir = Files.createTempDirectory(prefix);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(dir)));
            return dir;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    static void deleteTree(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // already gone
        }
    }

    /** Starts a proxy on 127.0.0.1:0 in front of 127.0.0.1:upstreamPort; extra key/value pairs override. */
    static Proxy proxy(int upstreamPort, String... keyValues) throws Exception {
        return Proxy.start(config(upstreamPort, keyValues));
    }

    /** The configuration {@link #proxy} starts with. */
    static Config config(int upstreamPort, String... keyValues) throws Exception {
        Map<String, String> c = new LinkedHashMap<>();
        c.put("listen", "127.0.0.1:0");
        c.put("upstream", "127.0.0.1:" + upstreamPort);
        c.put("access_log", "off");
        c.put("error_log", Files.createTempFile(TEMP, "error", ".log").toString());
        for (int i = 0; i < keyValues.length; i += 2) c.put(keyValues[i], keyValues[i + 1]);
        return Config.from(c, "test");
    }

    /**
     * The file's text once it has at least n lines, waiting at most WAIT. A log's lines are
     * written by its own thread, a moment after the request they are about.
     */
    static String awaitLines(Path file, int n) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            String text = Files.exists(file) ? Files.readString(file) : "";
            if (text.lines().count() >= n) return text;
            if (System.nanoTime() - deadline > 0) throw new AssertionError("fewer than " + n + " lines in " + file + ":\n" + text);
            Thread.sleep(10);
        }
    }

    /** The lines of the proxy's error log (a file, in the tests that read it). */
    static List<String> errorLog(Config config) throws IOException {
        return Files.readAllLines(Path.of(config.errorLog()));
    }

    /**
     * The error log's lines that contain {@code part}, once there are at least {@code n} of
     * them or WAIT has passed: the log is written a moment after the event.
     */
    static long awaitCount(Config config, int n, String part) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        long c;
        while ((c = count(errorLog(config), part)) < n && System.nanoTime() - deadline < 0) Thread.sleep(10);
        return c;
    }

    static long count(List<String> lines, String part) {
        return lines.stream().filter(l -> l.contains(part)).count();
    }

    /** The file's text once it contains the string, waiting at most WAIT. */
    static String awaitText(Path file, String wanted) throws IOException, InterruptedException {
        return awaitText(file, wanted, 1);
    }

    /** The file's text once it contains the string {@code times} times, waiting at most WAIT. */
    static String awaitText(Path file, String wanted, int times) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            String text = Files.exists(file) ? Files.readString(file) : "";
            if (text.split(java.util.regex.Pattern.quote(wanted), -1).length - 1 >= times) return text;
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError(times + " times '" + wanted + "' not in " + file + ":\n" + text);
            }
            Thread.sleep(10);
        }
    }

    static int port(Proxy p) {
        return p.boundAddresses().get(0).getPort();
    }

    /** A port that nothing listens on (bound, then closed): connecting to it is refused. */
    static int closedPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /**
     * Fills a listener's accept queue (nobody accepts): a further SYN is then dropped, so a
     * connect hangs until its timeout.
     */
    static List<Socket> fillAcceptQueue(ServerSocket full) throws IOException {
        List<Socket> fillers = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            Socket s = new Socket();
            try {
                s.connect(full.getLocalSocketAddress(), 200);
                fillers.add(s);
            } catch (IOException e) {
                s.close();
                return fillers; // the queue is full: connects now hang
            }
        }
        for (Socket s : fillers) s.close();
        throw new AssertionError("the accept queue never filled");
    }

    // ---- the parser on its own --------------------------------------------------------

    /**
     * Reads one request head from literal bytes through a real {@link Wire} (so the line
     * and size rules apply) and decides its framing. Returns 0 if accepted, else the status.
     * The limits, and the statuses for exceeding them, are the ones the proxy builds from
     * its configuration ({@link HeadReader.Limits#request}): none is supplied here.
     */
    static int requestStatus(String raw) throws IOException {
        return requestStatus(raw, config());
    }

    /** As {@link #requestStatus(String)}, with max_request_line and max_header_size set. */
    static int requestStatus(String raw, int maxRequestLine, int maxHeaderSize) throws IOException {
        return requestStatus(raw, limits(maxRequestLine, maxHeaderSize));
    }

    private static int requestStatus(String raw, Config config) throws IOException {
        Rejection r = rejection(raw, config);
        return r == null ? 0 : r.status();
    }

    /** Where a request head was rejected: by the head scanner, the parser, or the framing decision. */
    enum Stage {
        /** {@link HeadReader#readHead}: line endings, bytes of the request line, size limits. */
        HEAD,
        /** {@link HttpParser#parseRequest}: request line, field syntax, Host. */
        PARSE,
        /** {@link HttpParser#requestBody}: Transfer-Encoding and Content-Length (RFC 9112 6.3). */
        FRAMING
    }

    record Rejection(Stage stage, int status, String reason) {}

    /** Which stage rejected this request head, with what; null if it was accepted. */
    static Rejection rejection(String raw) throws IOException {
        return rejection(raw, config());
    }

    private static Rejection rejection(String raw, Config config) throws IOException {
        Stage stage = Stage.HEAD;
        try (Pair pair = new Pair(raw)) {
            byte[] head = HeadReader.readHead(pair.wire, HeadReader.Limits.request(config));
            if (head == null) throw new AssertionError("no request head at all");
            stage = Stage.PARSE;
            HttpParser.Request r = HttpParser.parseRequest(head);
            stage = Stage.FRAMING;
            HttpParser.requestBody(r);
            return null;
        } catch (HttpError e) {
            return new Rejection(stage, e.status, e.getMessage());
        }
    }

    record Parsed(HttpParser.Request request, Body body) {}

    static Parsed parseRequest(String raw) throws IOException, HttpError {
        return parseRequest(raw, config());
    }

    static Parsed parseRequest(String raw, int maxRequestLine, int maxHeaderSize) throws IOException, HttpError {
        return parseRequest(raw, limits(maxRequestLine, maxHeaderSize));
    }

    private static Parsed parseRequest(String raw, Config config) throws IOException, HttpError {
        try (Pair pair = new Pair(raw)) {
            byte[] head = HeadReader.readHead(pair.wire, HeadReader.Limits.request(config));
            if (head == null) throw new AssertionError("no request head at all");
            HttpParser.Request r = HttpParser.parseRequest(head);
            return new Parsed(r, HttpParser.requestBody(r));
        }
    }

    /** Parses a response head from literal bytes with the proxy's response limits; returns its framing. */
    static Body responseBody(String raw, String method) throws IOException, HttpError {
        try (Pair pair = new Pair(raw)) {
            byte[] head = HeadReader.readHead(pair.wire, HeadReader.Limits.RESPONSE);
            if (head == null) throw new AssertionError("no response head at all");
            return HttpParser.responseBody(HttpParser.parseResponse(head), method);
        }
    }

    /** The default configuration, as the proxy would run with an empty file. */
    static Config config() {
        return config(Map.of());
    }

    private static Config limits(int maxRequestLine, int maxHeaderSize) {
        return config(Map.of("max_request_line", String.valueOf(maxRequestLine),
                "max_header_size", String.valueOf(maxHeaderSize)));
    }

    private static Config config(Map<String, String> values) {
        try {
            return Config.from(values, "test");
        } catch (Config.Invalid e) {
            throw new AssertionError(e.getMessage(), e);
        }
    }

    /** A connected pair of loopback channels; the far end has sent {@code raw} and closed. */
    static final class Pair implements AutoCloseable {
        final SocketChannel near;
        final Wire wire;

        Pair(String raw) throws IOException {
            try (ServerSocketChannel server = ServerSocketChannel.open()) {
                server.bind(new InetSocketAddress("127.0.0.1", 0));
                try (SocketChannel far = SocketChannel.open(server.getLocalAddress())) {
                    near = server.accept();
                    far.write(ByteBuffer.wrap(bytes(raw)));
                    far.shutdownOutput();
                }
            }
            wire = new Wire(near, 64, Duration.ofSeconds(5), Duration.ofSeconds(5));
        }

        @Override
        public void close() {
            wire.close();
        }
    }

    // ---- a backend that records ---------------------------------------------------------

    /** One request as the backend received it: the raw head and body bytes, decoded body. */
    record Received(String head, byte[] rawBody, byte[] body, int connection) {
        String requestLine() {
            return head.substring(0, head.indexOf("\r\n"));
        }

        List<String> all(String name) {
            List<String> out = new ArrayList<>();
            for (String line : head.split("\r\n")) {
                int colon = line.indexOf(':');
                if (colon > 0 && line.substring(0, colon).equalsIgnoreCase(name)) out.add(line.substring(colon + 1).strip());
            }
            return out;
        }

        String header(String name) {
            List<String> all = all(name);
            return all.isEmpty() ? null : all.get(0);
        }
    }

    interface Handler {
        /** Answers one request; return false to close the connection afterwards. */
        boolean handle(Received request, OutputStream out, Socket socket) throws Exception;
    }

    static final Handler HELLO = (r, out, s) -> {
        out.write(bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello"));
        return true;
    };

    /**
     * A WebSocket server: answers the upgrade with 101, reads 4 bytes and answers
     * "pong:" and them, then half-closes and reads to the end.
     */
    static final Handler WEBSOCKET_PONG = (r, out, s) -> {
        out.write(bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"));
        out.flush();
        InputStream in = s.getInputStream();
        byte[] ping = in.readNBytes(4);
        out.write(bytes("pong:" + text(ping)));
        out.flush();
        s.shutdownOutput();
        in.readAllBytes();
        return false;
    };

    /** Answers with these raw bytes, then closes. */
    static Handler raw(String response) {
        return (r, out, s) -> {
            out.write(bytes(response));
            return false;
        };
    }

    /**
     * A real HTTP backend on 127.0.0.1:0 that understands Content-Length and chunked
     * request bodies, records every request, and answers with its handler.
     */
    static final class Backend implements AutoCloseable {
        final ServerSocket server;
        final BlockingQueue<Received> received = new LinkedBlockingQueue<>();
        final AtomicInteger connections = new AtomicInteger();
        final List<Socket> sockets = new CopyOnWriteArrayList<>();
        /** The ids of the connections whose serving has ended (closed by either side), in order. */
        final BlockingQueue<Integer> ended = new LinkedBlockingQueue<>();
        volatile Handler handler;

        Backend() throws IOException {
            this(HELLO);
        }

        Backend(Handler handler) throws IOException {
            this(handler, new InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), 0));
        }

        /** A backend on this address (port 0: a free one), such as [::1] beside one on 127.0.0.1. */
        Backend(Handler handler, InetSocketAddress address) throws IOException {
            this.handler = handler;
            server = new ServerSocket();
            try {
                server.bind(address, 1000);
            } catch (IOException e) {
                server.close();
                throw e;
            }
            Thread.ofVirtual().start(this::acceptLoop);
        }

        int port() {
            return server.getLocalPort();
        }

        /** The id of the next connection to end, waiting at most WAIT: an event, not a poll. */
        int nextEnded() throws InterruptedException {
            Integer id = ended.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            if (id == null) throw new AssertionError("no upstream connection ended");
            return id;
        }

        /** The next request received, waiting at most WAIT. */
        Received next() throws InterruptedException {
            Received r = received.poll(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            if (r == null) throw new AssertionError("the backend received no request");
            return r;
        }

        private void acceptLoop() {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    sockets.add(s);
                    int id = connections.incrementAndGet();
                    Thread.ofVirtual().start(() -> serve(s, id));
                } catch (IOException e) {
                    return;
                }
            }
        }

        private void serve(Socket s, int id) {
            try (s) {
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                while (true) {
                    String head = readHead(in);
                    if (head == null) return;
                    ByteArrayOutputStream raw = new ByteArrayOutputStream();
                    byte[] body = readBody(head, in, raw);
                    Received r = new Received(head, raw.toByteArray(), body, id);
                    received.add(r);
                    boolean again = handler.handle(r, out, s);
                    out.flush();
                    if (!again) return;
                }
            } catch (Exception e) {
                // the proxy closed or reset the connection: the test decides what that means
            } finally {
                ended.add(id);
            }
        }

        @Override
        public void close() throws IOException {
            server.close();
            for (Socket s : sockets) s.close();
        }
    }

    /** Reads bytes up to and including CRLFCRLF; null at a clean end of stream. */
    static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int matched = 0;
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                if (head.size() == 0) return null;
                throw new EOFException("end of stream inside a head: " + head);
            }
            head.write(b);
            matched = b == "\r\n\r\n".charAt(matched) ? matched + 1 : (b == '\r' ? 1 : 0);
        }
        return head.toString(StandardCharsets.ISO_8859_1);
    }

    /** Reads a request body framed by Content-Length or chunked, as the proxy sends it. */
    static byte[] readBody(String head, InputStream in, ByteArrayOutputStream raw) throws IOException {
        Received r = new Received(head, null, null, 0);
        String te = r.header("Transfer-Encoding");
        String cl = r.header("Content-Length");
        if (te != null) return readChunked(in, raw);
        if (cl != null) {
            byte[] body = readExactly(in, Integer.parseInt(cl));
            raw.write(body);
            return body;
        }
        return new byte[0];
    }

    static byte[] readChunked(InputStream in, ByteArrayOutputStream raw) throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        while (true) {
            String line = readLine(in);
            raw.write(bytes(line + "\r\n"));
            int size = Integer.parseInt(line.split(";")[0].strip(), 16);
            if (size == 0) {
                for (String t; !(t = readLine(in)).isEmpty(); ) raw.write(bytes(t + "\r\n"));
                raw.write(bytes("\r\n"));
                return body.toByteArray();
            }
            byte[] data = readExactly(in, size);
            body.write(data);
            raw.write(data);
            raw.write(bytes(readLine(in) + "\r\n"));
        }
    }

    /** Exactly n bytes, or EOFException: a short body is a failure, never a request. */
    static byte[] readExactly(InputStream in, int n) throws IOException {
        byte[] b = in.readNBytes(n);
        if (b.length < n) throw new EOFException("body ended after " + b.length + " of " + n + " bytes");
        return b;
    }

    static String readLine(InputStream in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int b; (b = in.read()) != '\n'; ) {
            if (b < 0) throw new EOFException("end of stream inside a line");
            sb.append((char) b);
        }
        if (sb.isEmpty() || sb.charAt(sb.length() - 1) != '\r') throw new IOException("line without CRLF: " + sb);
        return sb.substring(0, sb.length() - 1);
    }

    // ---- a raw client -----------------------------------------------------------------

    /** A response as the client received it. */
    record Response(int status, String head, Map<String, List<String>> headers, byte[] body, boolean chunked) {
        String header(String name) {
            List<String> v = headers.get(name.toLowerCase(Locale.ROOT));
            return v == null ? null : v.get(0);
        }

        String bodyText() {
            return text(body);
        }
    }

    /** A client on a raw socket: sends exact bytes, reads responses, notices the close. */
    static final class Client implements AutoCloseable {
        final Socket socket;
        final InputStream in;
        final OutputStream out;

        Client(int port) throws IOException {
            this(new Socket("127.0.0.1", port));
        }

        /** A client on a socket made elsewhere (TlsTest: a TLS socket). */
        Client(Socket socket) throws IOException {
            this.socket = socket;
            socket.setSoTimeout((int) WAIT.toMillis());
            in = socket.getInputStream();
            out = socket.getOutputStream();
        }

        Client send(String raw) throws IOException {
            out.write(bytes(raw));
            out.flush();
            return this;
        }

        Response read() throws IOException {
            return read(false);
        }

        /** Reads one response; for a HEAD request pass headOnly (no body follows). */
        Response read(boolean headOnly) throws IOException {
            String head = readHead(in);
            if (head == null) throw new EOFException("connection closed, no response");
            int status = Integer.parseInt(head.substring(9, 12));
            Map<String, List<String>> headers = new LinkedHashMap<>();
            for (String line : head.split("\r\n")) {
                int colon = line.indexOf(':');
                if (colon > 0 && !line.startsWith("HTTP/")) {
                    headers.computeIfAbsent(line.substring(0, colon).toLowerCase(Locale.ROOT), k -> new ArrayList<>())
                            .add(line.substring(colon + 1).strip());
                }
            }
            List<String> te = headers.get("transfer-encoding");
            List<String> cl = headers.get("content-length");
            byte[] body;
            boolean chunked = te != null;
            if (headOnly || status < 200 || status == 204 || status == 304) body = new byte[0];
            else if (chunked) body = readChunked(in, new ByteArrayOutputStream());
            else if (cl != null) body = in.readNBytes(Integer.parseInt(cl.get(0)));
            else body = in.readAllBytes();
            return new Response(status, head, headers, body, chunked);
        }

        /** True if the proxy closed the connection (FIN) with nothing more to read. */
        boolean closedByPeer() throws IOException {
            try {
                return in.read() < 0;
            } catch (SocketTimeoutException e) {
                return false;
            }
        }

        /** True if the proxy closed the connection, in order or by reset; reads what is left. */
        boolean closedByPeerOrReset() {
            try {
                while (in.read(new byte[4096]) >= 0) {
                    // discard what the proxy still sent before closing
                }
                return true;
            } catch (SocketTimeoutException e) {
                return false;
            } catch (IOException e) {
                return true; // reset
            }
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    /** Sends one request on a new connection and reads one response. */
    static Response exchange(int port, String raw) throws IOException {
        try (Client c = new Client(port)) {
            return c.send(raw).read(raw.startsWith("HEAD "));
        }
    }
}
