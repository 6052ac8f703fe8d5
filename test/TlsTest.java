import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * HTTPS end to end: certificates made here with openssl, a TLS listener in front of a real
 * backend, clients of the JDK's own TLS, curl and openssl s_client. What each test asserts
 * is in its name.
 */
@Timeout(60)
class TlsTest {
    static Path dir;
    static Path rsaCert, rsaKey, ecCert, ecKey;

    @BeforeAll
    static void certificates() throws Exception {
        dir = TestSupport.tempDirectory("tls-test");
        rsaCert = dir.resolve("a.pem");
        rsaKey = dir.resolve("a.key");
        ecCert = dir.resolve("b.pem");
        ecKey = dir.resolve("b.key");
        // localhost and a.test: RSA, its key in PKCS#1 ("BEGIN RSA PRIVATE KEY").
        selfSigned("rsa:2048", null, "localhost", "DNS:localhost,DNS:a.test", rsaCert, dir.resolve("a.pkcs8"));
        openssl("rsa", "-in", dir.resolve("a.pkcs8").toString(), "-traditional", "-out", rsaKey.toString());
        // b.test: EC P-256, its key in SEC1 ("BEGIN EC PRIVATE KEY").
        selfSigned("ec", "ec_paramgen_curve:P-256", "b.test", "DNS:b.test", ecCert, dir.resolve("b.pkcs8"));
        openssl("ec", "-in", dir.resolve("b.pkcs8").toString(), "-out", ecKey.toString());
    }

    static void selfSigned(String newkey, String keyOption, String cn, String san, Path cert, Path key) throws Exception {
        List<String> args = new ArrayList<>(List.of("req", "-x509", "-newkey", newkey));
        if (keyOption != null) args.addAll(List.of("-pkeyopt", keyOption));
        args.addAll(List.of("-nodes", "-keyout", key.toString(), "-out", cert.toString(), "-days", "2",
                "-subj", "/CN=" + cn, "-addext", "subjectAltName=" + san));
        openssl(args.toArray(String[]::new));
    }

    /** Runs openssl with these arguments; returns its output (stdout and stderr). */
    static String openssl(String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("openssl"));
        command.addAll(List.of(args));
        return run(command, null);
    }

    static String run(List<String> command, String stdin) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        if (stdin != null) p.getOutputStream().write(TestSupport.bytes(stdin));
        p.getOutputStream().close();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "finished: " + command);
        return TestSupport.text(out) + "\nexit " + p.exitValue();
    }

    /** A proxy with a TLS listener (first) and a plain one, both pairs, and these keys. */
    static Proxy proxy(int backend, String... keyValues) throws Exception {
        List<String> kv = new ArrayList<>(List.of(
                "listen", "127.0.0.1:0 ssl, 127.0.0.1:0",
                "ssl_certificate", rsaCert + ", " + ecCert,
                "ssl_certificate_key", rsaKey + ", " + ecKey));
        kv.addAll(List.of(keyValues));
        return TestSupport.proxy(backend, kv.toArray(String[]::new));
    }

    /** Waits for exactly {@code n} lines of the log that contain {@code text}, and returns them. */
    static List<String> awaitLines(Path log, String text, int n) throws Exception {
        List<String> lines = List.of();
        long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
        while (lines.size() < n && System.nanoTime() < deadline) {
            lines = Files.readAllLines(log).stream().filter(l -> l.contains(text)).toList();
            Thread.sleep(10); // the error log's thread writes a moment after
        }
        assertEquals(n, lines.size(), Files.readString(log));
        return lines;
    }

    static int tlsPort(Proxy p) {
        return p.boundAddresses().get(0).getPort();
    }

    static int plainPort(Proxy p) {
        return p.boundAddresses().get(1).getPort();
    }

    /** The JDK's TLS client, trusting the given certificates, asking for {@code sni} (null: none). */
    static SSLSocket connect(int port, String sni, Path... trusted) throws Exception {
        return connect(new Socket("127.0.0.1", port), sni, null, trusted);
    }

    /** The same over a socket made elsewhere ({@link Tapped}), offering only {@code protocol} (null: the default ones). */
    static SSLSocket connect(Socket tcp, String sni, String protocol, Path... trusted) throws Exception {
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        for (Path t : trusted) {
            store.setCertificateEntry(t.toString(), cf.generateCertificate(new ByteArrayInputStream(Files.readAllBytes(t))));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(store);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(tcp, "127.0.0.1", tcp.getPort(), true);
        SSLParameters params = s.getSSLParameters();
        if (protocol != null) params.setProtocols(new String[] {protocol});
        params.setServerNames(sni == null ? List.of() : List.of(new SNIHostName(sni)));
        params.setApplicationProtocols(new String[] {"http/1.1"});
        s.setSSLParameters(params);
        s.setSoTimeout((int) TestSupport.WAIT.toMillis());
        s.startHandshake();
        return s;
    }

    /**
     * A TCP socket that keeps every byte it receives, for a TLS client layered on it: which
     * records came, as the JDK's client won't say. (It takes a bare FIN for close_notify.)
     */
    static final class Tapped extends Socket {
        private final ByteArrayOutputStream received = new ByteArrayOutputStream();

        Tapped(int port) throws IOException {
            super("127.0.0.1", port);
        }

        @Override
        public InputStream getInputStream() throws IOException {
            return new FilterInputStream(super.getInputStream()) {
                @Override
                public int read(byte[] b, int off, int len) throws IOException {
                    int n = super.read(b, off, len);
                    if (n > 0) keep(b, off, n);
                    return n;
                }

                @Override
                public int read() throws IOException {
                    int c = super.read();
                    if (c >= 0) keep(new byte[] {(byte) c}, 0, 1);
                    return c;
                }
            };
        }

        private synchronized void keep(byte[] b, int off, int n) {
            received.write(b, off, n);
        }

        /** The content type of each whole record received, in order (RFC 8446 5.1: 0x15 alert, 0x17 data). */
        synchronized List<Integer> recordTypes() {
            byte[] b = received.toByteArray();
            List<Integer> types = new ArrayList<>();
            for (int i = 0; i + 5 <= b.length; i += 5 + ((b[i + 3] & 0xff) << 8 | b[i + 4] & 0xff)) {
                if (i + 5 + ((b[i + 3] & 0xff) << 8 | b[i + 4] & 0xff) > b.length) break; // a record cut short
                types.add(b[i] & 0xff);
            }
            return types;
        }
    }

    static String subject(SSLSocket s) throws Exception {
        return ((X509Certificate) s.getSession().getPeerCertificates()[0]).getSubjectX500Principal().getName();
    }

    @Test
    void curlWithCacertThroughTheTlsListenerPrintsHelloAndTheUpstreamSeesHttps() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = proxy(backend.port())) {
            String out = run(List.of("curl", "-sS", "--max-time", "10", "--cacert", rsaCert.toString(),
                    "https://localhost:" + tlsPort(proxy) + "/hi"), null);
            assertEquals("Hello\nexit 0", out);
            var got = backend.next();
            assertEquals("https", got.header("X-Forwarded-Proto"), "$scheme is https on a TLS listener");
        }
    }

    @Test
    void sniPicksTheRightOfTwoCertificatesAndNoneOrAnUnknownNameGetsTheFirst() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = proxy(backend.port())) {
            int port = tlsPort(proxy);
            try (SSLSocket s = connect(port, "b.test", ecCert)) {
                assertEquals("CN=b.test", subject(s));
                assertEquals("http/1.1", s.getApplicationProtocol(), "ALPN: http/1.1");
            }
            try (SSLSocket s = connect(port, "a.test", rsaCert)) {
                assertEquals("CN=localhost", subject(s), "a.test is a name of the first certificate");
            }
            try (SSLSocket s = connect(port, "unknown.test", rsaCert)) {
                assertEquals("CN=localhost", subject(s), "an unknown name gets the default, the first");
            }
            try (SSLSocket s = connect(port, null, rsaCert)) {
                assertEquals("CN=localhost", subject(s), "no SNI: the default");
            }
        }
    }

    @Test
    void keepAliveAndPipeliningOverTlsAndTheIdleConnectionHoldsNoBuffer() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = proxy(backend.port());
             var client = new TestSupport.Client(connect(tlsPort(proxy), "b.test", ecCert))) {
            client.send("GET /1 HTTP/1.1\r\nHost: b.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: b.test\r\n\r\n");
            assertEquals("Hello", TestSupport.text(client.read().body()));
            assertEquals("Hello", TestSupport.text(client.read().body()));
            long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
            while (proxy.idle().size() != 1 && System.nanoTime() < deadline) Thread.onSpinWait();
            assertEquals(1, proxy.idle().size(), "the TLS connection waits among the idle ones");
            client.send("GET /3 HTTP/1.1\r\nHost: b.test\r\n\r\n"); // woken from the selector
            assertEquals("Hello", TestSupport.text(client.read().body()));
        }
    }

    /** A pool that knows which of its buffers are lent out. */
    static final class WatchedPool extends BufferPool {
        final Set<ByteBuffer> lent = Collections.synchronizedSet(Collections.newSetFromMap(new IdentityHashMap<>()));

        WatchedPool(long budget) {
            super(budget);
        }

        @Override
        ByteBuffer take(long expected) {
            return lend(super.take(expected));
        }

        @Override
        ByteBuffer takeLarge() {
            return lend(super.takeLarge());
        }

        private ByteBuffer lend(ByteBuffer b) {
            if (b != null) lent.add(b);
            return b;
        }

        @Override
        void give(ByteBuffer b) {
            if (b != null) lent.remove(b);
            super.give(b);
        }
    }

    @Test
    void stalledTlsClientsHoldNoBufferAndASpentPoolStillServesOthersWholeAndEveryBufferComesBack() throws Exception {
        byte[] big = new byte[1 << 20];
        new Random(10).nextBytes(big);
        TestSupport.Handler handler = (r, out, sock) -> {
            byte[] body = r.requestLine().startsWith("GET /big") ? big : TestSupport.bytes(r.body().length + "");
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + body.length + "\r\n\r\n"));
            out.write(body);
            return true;
        };
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        List<TestSupport.Client> stalled = new ArrayList<>();
        List<ByteBuffer> spent = new ArrayList<>();
        try (var backend = new TestSupport.Backend(handler)) {
            Config config = TestSupport.config(backend.port(), "listen", "127.0.0.1:0 ssl", "buffer_memory", "1m",
                    "error_log", errors.toString(), "ssl_certificate", ecCert.toString(), "ssl_certificate_key", ecKey.toString());
            WatchedPool pool = new WatchedPool(config.bufferMemory());
            try (var proxy = Proxy.start(config, pool)) {
                int port = tlsPort(proxy);
                String upload = "u".repeat(300_000);
                try {
                    // 40 clients stall in the middle of their heads, and 3 in the middle of an
                    // upload: waiting between records, none holds a buffer of the pool.
                    for (int i = 0; i < 43; i++) {
                        var c = new TestSupport.Client(connect(port, "b.test", ecCert));
                        stalled.add(c);
                        c.send(i < 40 ? "GET /stalled HTTP/1.1\r\nHost: b.test\r\n" : "POST /up HTTP/1.1\r\nHost: b.test\r\n"
                                + "Content-Length: " + upload.length() + "\r\n\r\n" + upload.substring(0, 100_000));
                    }
                    long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
                    while (!pool.lent.isEmpty() && System.nanoTime() < deadline) Thread.sleep(10);
                    assertEquals(0, pool.lent.size(), "buffers held by clients that wait between records");

                    // The pool spent (the test holds all of it): other TLS clients download and
                    // upload with buffers of their own, whole.
                    for (ByteBuffer b; (b = pool.take(BufferPool.SMALL)) != null; ) spent.add(b);
                    for (int i = 0; i < 3; i++) {
                        try (var c = new TestSupport.Client(connect(port, "b.test", ecCert))) {
                            var r = c.send("GET /big HTTP/1.1\r\nHost: b.test\r\n\r\n").read();
                            assertEquals(200, r.status());
                            assertArrayEquals(big, r.body(), "the download is whole");
                            r = c.send("POST /up HTTP/1.1\r\nHost: b.test\r\nContent-Length: " + upload.length()
                                    + "\r\n\r\n" + upload).read();
                            assertEquals(upload.length() + "", r.bodyText(), "the upload arrived whole");
                        }
                    }
                    spent.forEach(pool::give);
                    spent.clear();

                    // The stalled ones go on where they stopped, and are answered whole.
                    for (int i = 0; i < stalled.size(); i++) {
                        var c = stalled.get(i);
                        var r = c.send(i < 40 ? "\r\n" : upload.substring(100_000)).read();
                        assertEquals(200, r.status());
                        if (i >= 40) assertEquals(upload.length() + "", r.bodyText(), "the stalled upload arrived whole");
                    }
                } finally {
                    spent.forEach(pool::give);
                    for (var c : stalled) c.close();
                }
                // Gone, after their responses: every buffer is back in the pool.
                long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
                while (!pool.lent.isEmpty() && System.nanoTime() < deadline) Thread.sleep(10);
                assertEquals(0, pool.lent.size(), "buffers still lent after every client left");
                assertTrue(pool.made() <= pool.budget());
            }
        }
        assertFalse(Files.readString(errors).contains("unexpected"), Files.readString(errors)); // no OutOfMemoryError, no bug
    }

    @Test
    void anIdleTlsConnectionClosedAtKeepaliveTimeoutGetsCloseNotifyAndKeepsNoBuffer() throws Exception {
        WatchedPool pool = new WatchedPool(1 << 20);
        try (var backend = new TestSupport.Backend();
             var proxy = Proxy.start(TestSupport.config(backend.port(), "listen", "127.0.0.1:0 ssl", "keepalive_timeout",
                     "300ms", "ssl_certificate", ecCert.toString(), "ssl_certificate_key", ecKey.toString()), pool)) {
            var tcp = new Tapped(tlsPort(proxy));
            try (var client = new TestSupport.Client(connect(tcp, "b.test", "TLSv1.2", ecCert))) {
                assertEquals(200, client.send("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n").read().status());
                assertTrue(client.closedByPeer(), "closed after keepalive_timeout");
                List<Integer> records = tcp.recordTypes();
                assertEquals(0x15, records.get(records.size() - 1), "the last record is close_notify: " + records);
            }
            long deadline = System.nanoTime() + TestSupport.WAIT.toNanos();
            while (!pool.lent.isEmpty() && System.nanoTime() < deadline) Thread.sleep(10);
            assertTrue(pool.lent.isEmpty(), "the buffers taken for close_notify are back");
        }
    }

    @Test
    void tls10And11AreRefusedAnd12And13Served() throws Exception {
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (var backend = new TestSupport.Backend(); var proxy = proxy(backend.port(), "error_log", errors.toString(),
                "ssl_protocols", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3")) {
            String address = "127.0.0.1:" + tlsPort(proxy);
            for (String old : List.of("-tls1", "-tls1_1")) {
                String out = run(List.of("openssl", "s_client", old, "-connect", address), "");
                assertFalse(out.endsWith("exit 0"), old + " must fail: " + out);
                assertFalse(out.contains("Protocol  : TLSv1.1\n    Cipher    : E"), out);
                // Refused with the alert record (RFC 8446 6.2, RFC 8996 5), not a bare close.
                assertTrue(out.contains("alert protocol version"), old + ": " + out);
            }
            for (String ok : List.of("-tls1_2", "-tls1_3")) {
                String out = run(List.of("openssl", "s_client", ok, "-connect", address, "-servername", "b.test"), "");
                assertTrue(out.contains("subject=CN = b.test"), ok + ": " + out);
            }
            assertTrue(TestSupport.awaitText(errors, "RFC 8996").contains("[warn]"));
        }
    }

    @Test
    void aFailedHandshakeIsOneInfoLineNamingTheClientAndWhyWithoutAStackOrAnAccessLine() throws Exception {
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        Path access = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var backend = new TestSupport.Backend();
             var proxy = proxy(backend.port(), "error_log", errors + " info", "access_log", access.toString())) {
            String address = "127.0.0.1:" + tlsPort(proxy);
            // A wrong protocol, no suite in common, a record that is no ClientHello.
            run(List.of("openssl", "s_client", "-tls1_1", "-connect", address), "");
            run(List.of("openssl", "s_client", "-tls1_2", "-cipher", "AES128-SHA", "-connect", address), "");
            try (Socket s = new Socket("127.0.0.1", tlsPort(proxy))) {
                s.getOutputStream().write(new byte[] {0x16, 0x03, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'});
                assertEquals(0x15, s.getInputStream().read(), "an alert record");
            }
            List<String> lines = awaitLines(errors, "handshake", 3);
            for (String line : lines) {
                assertTrue(line.matches(".* \\[info\\] TLS handshake failed: .+, client: 127\\.0\\.0\\.1"), line);
            }
            assertTrue(lines.get(0).contains("TLSv1.1"), lines.get(0));
            assertTrue(lines.get(1).toLowerCase(java.util.Locale.ROOT).contains("cipher"), lines.get(1));
            assertFalse(Files.readString(errors).contains("\tat "), "no stack trace");
            // The next client is served, and its request is the access log's only line.
            try (var client = new TestSupport.Client(connect(tlsPort(proxy), "b.test", ecCert))) {
                assertEquals(200, client.send("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n").read().status());
            }
            assertEquals(1, TestSupport.awaitLines(access, 1).lines().count(), "no access line for a failed handshake");
        }
    }

    @Test
    void plainHttpToTheTlsPortGetsNginxs400AndTheClose() throws Exception {
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (var backend = new TestSupport.Backend(); var proxy = proxy(backend.port(), "error_log", errors + " info");
             var client = new TestSupport.Client(tlsPort(proxy))) {
            var r = client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n").read();
            assertEquals(400, r.status());
            assertEquals("The plain HTTP request was sent to HTTPS port\n", TestSupport.text(r.body()));
            assertTrue(client.closedByPeerOrReset());
            assertTrue(backend.received.isEmpty(), "nothing reaches the upstream");
            String line = TestSupport.awaitText(errors, "HTTPS port");
            assertTrue(line.contains("[info] plain HTTP request sent to the HTTPS port, client: 127.0.0.1"), line);
        }
    }

    @Test
    void overMaxConnectionsATlsClientIsClosedWithoutAPlaintextAnswer() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = proxy(backend.port(), "max_connections", "1");
             SSLSocket held = connect(tlsPort(proxy), null, rsaCert)) {
            held.startHandshake(); // and no request yet: busy reading one (an idle one would make room)
            try (Socket extra = new Socket("127.0.0.1", tlsPort(proxy))) {
                extra.setSoTimeout((int) TestSupport.WAIT.toMillis());
                byte[] got;
                try {
                    got = extra.getInputStream().readAllBytes();
                } catch (SocketException reset) {
                    got = new byte[0];
                }
                // A plain "503" would reach a TLS client as a bad record: the refusal is the close.
                assertEquals("", TestSupport.text(got), "nothing but the close for a TLS client over max_connections");
            }
        }
    }

    @Test
    void aTlsClientHelloOnThePlainPortStaysA400() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = proxy(backend.port());
             var client = new TestSupport.Client(plainPort(proxy))) {
            client.out.write(new byte[] {0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00});
            client.out.flush();
            assertEquals(400, client.read().status());
        }
    }

    @Test
    void redirectHttpsSends301ForGetAnd308OtherwiseToTheTlsListenerWithAddHeader() throws Exception {
        try (var backend = new TestSupport.Backend();
             var proxy = proxy(backend.port(), "redirect_https", "on",
                     "add_header.Strict-Transport-Security", "max-age=31536000")) {
            int tls = tlsPort(proxy);
            try (var client = new TestSupport.Client(plainPort(proxy))) {
                var r = client.send("GET /a/b?c=d HTTP/1.1\r\nHost: example.test:8080\r\n\r\n").read();
                assertEquals(301, r.status());
                assertEquals("https://example.test:" + tls + "/a/b?c=d", r.header("Location"));
                assertEquals("max-age=31536000", r.header("Strict-Transport-Security"));
                var post = client.send("POST /form HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n\r\n").read();
                assertEquals(308, post.status(), "the method must not change on the way");
            }
            // The TLS listener serves, with the added header.
            try (var client = new TestSupport.Client(connect(tls, "a.test", rsaCert))) {
                var r = client.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").read();
                assertEquals(200, r.status());
                assertEquals("max-age=31536000", r.header("Strict-Transport-Security"));
            }
            assertTrue(backend.received.size() == 1, "the redirects never reached the upstream");
        }
    }

    @Test
    void aWebSocketTunnelsOverTls() throws Exception {
        TestSupport.Handler ws = TestSupport.WEBSOCKET_PONG;
        try (var backend = new TestSupport.Backend(ws); var proxy = proxy(backend.port());
             var client = new TestSupport.Client(connect(tlsPort(proxy), "b.test", ecCert))) {
            client.send("GET /ws HTTP/1.1\r\nHost: b.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\nping");
            String head = TestSupport.readHead(client.in);
            assertTrue(head.startsWith("HTTP/1.1 101"), head);
            assertEquals("pong:ping", TestSupport.text(client.in.readNBytes(9)));
            assertEquals(-1, client.in.read(), "the upstream's half-close reaches the client as close_notify");
        }
    }

    @Test
    void aClientThatSendsNothingOrStallsMidHandshakeIsClosedByClientHeaderTimeout() throws Exception {
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (var backend = new TestSupport.Backend();
             var proxy = proxy(backend.port(), "client_header_timeout", "1s", "error_log", errors + " info")) {
            for (byte[] sent : List.of(new byte[0], new byte[] {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00})) {
                try (Socket s = new Socket("127.0.0.1", tlsPort(proxy))) {
                    s.setSoTimeout(5000);
                    s.getOutputStream().write(sent); // nothing, or the start of a ClientHello
                    long start = System.nanoTime();
                    int read;
                    try {
                        read = s.getInputStream().read();
                    } catch (IOException reset) {
                        read = -1;
                    }
                    long ms = (System.nanoTime() - start) / 1_000_000;
                    assertEquals(-1, read, "closed, nothing sent");
                    assertTrue(ms > 700 && ms < 3000, "closed after client_header_timeout, not " + ms + " ms");
                }
            }
            List<String> lines = awaitLines(errors, "timed out", 2);
            for (String line : lines) {
                assertTrue(line.matches(".* \\[info\\] TLS handshake timed out, client: 127\\.0\\.0\\.1"), line);
            }
        }
    }

    @Test
    void aCertificateReplacedOnDiskIsServedOnTheNextHandshakeAndABrokenOneKeepsTheOld() throws Exception {
        Path cert = dir.resolve("renew.pem"), key = dir.resolve("renew.key");
        Path newCert = dir.resolve("renew2.pem"), newKey = dir.resolve("renew2.key");
        selfSigned("rsa:2048", null, "old.test", "DNS:old.test", cert, key);
        selfSigned("rsa:2048", null, "new.test", "DNS:new.test", newCert, newKey);
        Path oldCert = Files.copy(cert, dir.resolve("renew-old.pem"));
        Path errors = Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (var backend = new TestSupport.Backend();
             var proxy = TestSupport.proxy(backend.port(), "listen", "127.0.0.1:0 ssl", "error_log", errors.toString(),
                     "ssl_certificate", cert.toString(), "ssl_certificate_key", key.toString())) {
            int port = tlsPort(proxy);
            try (SSLSocket s = connect(port, "old.test", cert)) {
                assertEquals("CN=old.test", subject(s));
            }
            // Broken: the certificate file half-written. The old pair stays, and the log says so.
            Files.writeString(cert, "-----BEGIN CERTIFICATE-----\nMIIB\n");
            String log = TestSupport.awaitText(errors, "still serving");
            assertTrue(log.contains(cert.toString()), log);
            try {
                connect(port, "old.test", newCert).close();
                throw new AssertionError("the broken file replaced the pair");
            } catch (javax.net.ssl.SSLHandshakeException expected) {
                // still the old certificate, which this client does not trust
            }
            // Broken inside: the certificate whole again, its key cut short. The same, and the
            // renewals are still watched.
            Files.copy(oldCert, cert, StandardCopyOption.REPLACE_EXISTING);
            Files.writeString(key, "-----BEGIN EC PRIVATE KEY-----\nMAKgAA==\n-----END EC PRIVATE KEY-----\n");
            log = TestSupport.awaitText(errors, "still serving", 2);
            assertTrue(log.contains("ssl_certificate_key " + key), log);
            // Renewed: both files replaced, as certbot does. Within 2 s new handshakes get it.
            Files.copy(newKey, key, StandardCopyOption.REPLACE_EXISTING);
            Files.copy(newCert, cert, StandardCopyOption.REPLACE_EXISTING);
            long deadline = System.nanoTime() + 3_000_000_000L;
            String seen = null;
            while (System.nanoTime() < deadline) {
                try (SSLSocket s = connect(port, "new.test", newCert)) {
                    seen = subject(s);
                    break;
                } catch (IOException notYet) {
                    Thread.sleep(100); // polling the proxy's once-a-second check: no event to wait on
                }
            }
            assertEquals("CN=new.test", seen);
        }
    }

    @Test
    void theAccessLogHasTheTlsVariables() throws Exception {
        Path access = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var backend = new TestSupport.Backend();
             var proxy = proxy(backend.port(), "access_log", access.toString(),
                     "log_format", "$scheme $ssl_server_name $ssl_protocol $ssl_cipher $status");
             var client = new TestSupport.Client(connect(tlsPort(proxy), "b.test", ecCert))) {
            assertEquals(200, client.send("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n").read().status());
            String line = TestSupport.awaitLines(access, 1).strip();
            assertTrue(line.matches("https b\\.test TLSv1\\.3 TLS_AES_\\S+ 200"), line);
        }
    }

    // ---- the configuration ------------------------------------------------------------

    static String problems(String... keyValues) throws Exception {
        var e = assertThrows(Config.Invalid.class, () -> TestSupport.config(1, keyValues));
        return e.getMessage();
    }

    @Test
    void theThreeKeyFormsLoadAndBadKeysAreClearErrorsNamingTheFile() throws Exception {
        // PKCS#8 as openssl req writes it, PKCS#1 and SEC1 as above: all three load.
        for (Path[] pair : new Path[][] {{rsaCert, dir.resolve("a.pkcs8")}, {rsaCert, rsaKey}, {ecCert, ecKey}}) {
            var config = TestSupport.config(1, "listen", "127.0.0.1:0 ssl", "ssl_certificate", pair[0].toString(),
                    "ssl_certificate_key", pair[1].toString());
            assertEquals(1, config.tls().pairs().size());
            assertEquals(java.util.Set.of(0), config.tls().listeners());
        }
        Path encrypted = dir.resolve("enc.key");
        openssl("pkey", "-in", dir.resolve("a.pkcs8").toString(), "-aes256", "-passout", "pass:x", "-out", encrypted.toString());
        String p = problems("listen", "127.0.0.1:0 ssl", "ssl_certificate", rsaCert.toString(),
                "ssl_certificate_key", encrypted.toString());
        assertTrue(p.contains("ssl_certificate_key " + encrypted) && p.contains("encrypted"), p);

        p = problems("listen", "127.0.0.1:0 ssl", "ssl_certificate", rsaCert.toString(),
                "ssl_certificate_key", ecKey.toString());
        assertTrue(p.contains(ecKey + " does not match the certificate") && p.contains(rsaCert.toString()), p);

        // SEC1 keys cut short inside: an empty curve, a length past the end. One line, no stack trace.
        for (String body : new String[] {"MAKgAA==", "MAWgAwY="}) {
            Path cut = dir.resolve("cut.key");
            Files.writeString(cut, "-----BEGIN EC PRIVATE KEY-----\n" + body + "\n-----END EC PRIVATE KEY-----\n");
            p = problems("listen", "127.0.0.1:0 ssl", "ssl_certificate", ecCert.toString(), "ssl_certificate_key", cut.toString());
            assertTrue(p.contains("key ssl_certificate_key " + cut + ": "), p);
        }

        p = problems("listen", "127.0.0.1:0 ssl");
        assertTrue(p.contains("key 'ssl_certificate'"), p);
        p = problems("ssl_protocols", "TLSv1", "listen", "127.0.0.1:0 ssl", "ssl_certificate", rsaCert.toString(),
                "ssl_certificate_key", rsaKey.toString());
        assertTrue(p.contains("needs TLSv1.2 or TLSv1.3"), p);
        p = problems("redirect_https", "on");
        assertTrue(p.contains("needs a listener marked ssl"), p);
    }

    @Test
    void anExpiredCertificateIsAWarningAndNoSslListenerMeansNoTls() throws Exception {
        Path key = dir.resolve("x.key"), csr = dir.resolve("x.csr"), cert = dir.resolve("x.pem");
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key.toString(), "-out", csr.toString(), "-subj", "/CN=x");
        openssl("x509", "-req", "-in", csr.toString(), "-signkey", key.toString(), "-days", "-1", "-out", cert.toString());
        var config = TestSupport.config(1, "listen", "127.0.0.1:0 ssl", "ssl_certificate", cert.toString(),
                "ssl_certificate_key", key.toString());
        assertTrue(config.tls().warnings().get(0).contains(cert + " expired"), config.tls().warnings().toString());
        assertNull(TestSupport.config(1).tls(), "without an ssl listener nothing of TLS is made");
        assertNotEquals(null, config.tls());
    }
}
