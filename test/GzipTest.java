import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.zip.GZIPInputStream;
import java.util.zip.Inflater;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * gzip on the fly (Gzip): the decision as a pure function, the encoder's framing, the
 * deflater pool's budget, and end to end through a real backend and a raw client: what is
 * compressed, what passes untouched, the head of a compressed response, a live event
 * stream, and a flood of downloads within the budget.
 */
@Timeout(60)
class GzipTest {
    /** A page that compresses well, of about 10 KiB. */
    static final byte[] PAGE = page(10 * 1024);

    static byte[] page(int size) {
        StringBuilder b = new StringBuilder("<!doctype html><title>t</title>\n");
        for (int i = 0; b.length() < size; i++) b.append("<p>line ").append(i).append(" of the page, some text</p>\n");
        return b.substring(0, size).getBytes(StandardCharsets.ISO_8859_1);
    }

    static byte[] gunzip(byte[] b) throws IOException {
        try (InputStream in = new GZIPInputStream(new ByteArrayInputStream(b))) {
            return in.readAllBytes();
        }
    }

    // ---- the decision ---------------------------------------------------------------

    @ParameterizedTest(name = "Accept-Encoding: \"{0}\" -> {1}")
    @CsvSource(delimiter = '|', value = {
            "gzip | true",
            "GZIP | true",
            "x-gzip | true",
            "gzip, deflate, br | true",
            "deflate, gzip;q=0.5 | true",
            "gzip;q=0.001 | true",
            "gzip;q=1.0 | true",
            "gzip;q=0 | false",
            "gzip;q=0.000 | false",
            "gzip; q=0 | false",
            "identity | false",
            "deflate, br | false",
            "* | true",
            "*;q=0 | false",
            "*, gzip;q=0 | false",
            "gzip;q=0, * | false",
            "identity;q=1, *;q=0.5 | true",
            "gzip;q=2 | false",
            "gzip;q=abc | false",
            "'' | false",
    })
    void acceptEncodingWithQValues(String value, boolean accepted) {
        assertEquals(accepted, Gzip.accepts(List.of(value)));
    }

    @Test
    void noAcceptEncodingIsNo() {
        assertFalse(Gzip.accepts(List.of()));
        assertTrue(Gzip.accepts(List.of("deflate", "gzip")), "two fields are one list");
    }

    @ParameterizedTest(name = "{0} in [{1}] -> {2}")
    @CsvSource(delimiter = '|', value = {
            "text/html | text/html | true",
            "text/html; charset=utf-8 | text/html | true",
            "TEXT/HTML | text/html | true",
            "text/plain | text/* | true",
            "text/event-stream | text/* | true",
            "application/json | text/* application/json | true",
            "image/png | text/* application/json | false",
            "image/png | * | true",
            "textual/x | text/* | false",
            "text | text/* | false",
    })
    void typesMatchExactlyOrByWildcard(String contentType, String types, boolean listed) {
        assertEquals(listed, Gzip.typeListed(List.of(types.split(" ")), contentType));
    }

    @Test
    void theDefaultTypesAreTextLikeOnly() {
        List<String> types = List.of(Gzip.DEFAULT_TYPES.split(" "));
        for (String t : List.of("text/html", "text/css", "application/json", "application/javascript", "image/svg+xml",
                "application/xml", "text/event-stream")) {
            assertTrue(Gzip.typeListed(types, t), t);
        }
        for (String t : List.of("image/png", "image/jpeg", "application/zip", "application/gzip", "video/mp4",
                "application/octet-stream")) {
            assertFalse(Gzip.typeListed(types, t), t);
        }
    }

    static Headers headers(String... nameValues) {
        Headers h = new Headers();
        for (int i = 0; i < nameValues.length; i += 2) h.add(nameValues[i], nameValues[i + 1]);
        return h;
    }

    static final Gzip.Settings ON = new Gzip.Settings(List.of(Gzip.DEFAULT_TYPES.split(" ")), 20, 1, true);

    @ParameterizedTest(name = "status {0} -> {1}")
    @CsvSource({"200, true", "404, true", "500, true", "206, false", "416, false", "204, false", "304, false"})
    void everyStatusWithABodyButRanges(int status, boolean eligible) {
        assertEquals(eligible, Gzip.eligible(ON, status, headers("Content-Type", "text/html"), Body.ofLength(100), false));
    }

    @Test
    void whatTheResponseSaysAgainstIt() {
        Body body = Body.ofLength(100);
        assertTrue(Gzip.eligible(ON, 200, headers("Content-Type", "text/html"), body, false));
        assertTrue(Gzip.eligible(ON, 200, headers("Content-Type", "text/html"), Body.CHUNKED, false), "length unknown");
        assertFalse(Gzip.eligible(ON, 200, headers(), body, false), "no Content-Type");
        assertFalse(Gzip.eligible(ON, 200, headers("Content-Type", "image/png"), body, false));
        assertFalse(Gzip.eligible(ON, 200, headers("Content-Type", "text/html", "Content-Encoding", "gzip"), body, false));
        assertFalse(Gzip.eligible(ON, 200, headers("Content-Type", "text/html", "Cache-Control", "public, No-Transform"), body, false));
        assertFalse(Gzip.eligible(ON, 200, headers("Content-Type", "text/html", "Content-Range", "bytes 0-99/200"), body, false));
        assertFalse(Gzip.eligible(ON, 200, headers("Content-Type", "text/html"), Body.ofLength(19), false), "under min length");
        assertTrue(Gzip.eligible(ON, 200, headers("Content-Type", "text/html"), Body.ofLength(20), false));
        assertFalse(Gzip.eligible(ON, 200, headers("Content-Type", "text/html"), Body.ofLength(0), false));
        assertTrue(Gzip.eligible(ON, 200, headers("Content-Type", "text/html", "Content-Length", "100"), Body.EMPTY, true), "HEAD");
        assertFalse(Gzip.eligible(ON, 200, headers("Content-Type", "text/html", "Content-Length", "5"), Body.EMPTY, true), "small HEAD");
    }

    @ParameterizedTest(name = "Vary {0} -> {1}")
    @CsvSource(delimiter = '|', value = {
            "- | Accept-Encoding",
            "Cookie | Cookie, Accept-Encoding",
            "Cookie, accept-encoding | Cookie, accept-encoding",
            "Cookie;Origin | Cookie, Origin, Accept-Encoding",
            "Accept-Encoding;Cookie | Accept-Encoding, Cookie",
            "* | *",
    })
    void varyMergedIntoOneFieldOnce(String upstream, String expected) {
        Headers h = new Headers();
        if (!upstream.equals("-")) for (String v : upstream.split(";")) h.add("Vary", v);
        Gzip.mergeVary(h);
        assertEquals(List.of(expected), h.all("Vary"));
    }

    @Test
    void theHeadOfACompressedResponse() {
        Headers h = headers("Content-Type", "text/html", "Content-Length", "100", "ETag", "\"abc\"", "Accept-Ranges", "bytes");
        Gzip.rewriteHead(h);
        assertEquals("gzip", h.first("Content-Encoding"));
        assertNull(h.first("Content-Length"));
        assertNull(h.first("Accept-Ranges"));
        assertEquals("W/\"abc\"", h.first("ETag"));
        Headers weak = headers("ETag", "W/\"abc\"");
        Gzip.rewriteHead(weak);
        assertEquals("W/\"abc\"", weak.first("ETag"), "a weak ETag stays as it is");
    }

    @Test
    void ratioAsNginxPrintsIt() {
        assertEquals("3.50", Gzip.ratio(350, 100));
        assertEquals("1.05", Gzip.ratio(105, 100));
        assertNull(Gzip.ratio(0, 0));
    }

    // ---- the encoder and the pool ---------------------------------------------------

    @Test
    void encoderMakesGzipAndEachFlushIsDecodable() throws Exception {
        BufferPool pool = new BufferPool(8 << 20);
        ByteArrayOutputStream wire = new ByteArrayOutputStream();
        Gzip.Out out = piece -> {
            byte[] b = new byte[piece.remaining()];
            piece.get(b);
            wire.write(b);
        };
        try (Gzip.Encoder e = Gzip.start(ON, pool, request("GET", "gzip"), response("text/plain"), Body.CHUNKED, false)) {
            assertNotNull(e);
            ByteBuffer reused = ByteBuffer.allocate(64).put(bytes("data: one\n\n")).flip();
            e.write(reused, out);
            reused.clear().put(new byte[64]).clear(); // the relay refills its buffer: it must not be read again
            e.flush(out);
            assertEquals("data: one\n\n", inflated(wire.toByteArray()), "after a sync flush, all of it can be read");
            e.flush(out);
            int flushed = wire.size();
            e.flush(out);
            assertEquals(flushed, wire.size(), "nothing new: a flush writes nothing");
            e.write(ByteBuffer.wrap(PAGE), out);
            e.finish(out);
            assertEquals(11 + PAGE.length, e.bytesIn());
            assertEquals(wire.size(), e.bytesOut());
        }
        ByteArrayOutputStream expected = new ByteArrayOutputStream();
        expected.write(bytes("data: one\n\n"));
        expected.write(PAGE);
        assertArrayEquals(expected.toByteArray(), gunzip(wire.toByteArray()));
        assertEquals(1, pool.deflaters.idle(), "given back at close");
    }

    @Test
    void deflatersComeFromTheBudgetAndNoneFreeMeansIdentity() {
        BufferPool pool = new BufferPool(1 << 20); // half of it holds one deflater
        Deflaters d = pool.deflaters;
        Deflaters.Unit first = d.take(1);
        assertNotNull(first);
        assertEquals(Deflaters.COST, pool.made(), "counted in the budget");
        assertNull(d.take(1), "the budget's share is spent");
        assertNull(Gzip.start(ON, pool, request("GET", "gzip"), response("text/plain"), Body.CHUNKED, false),
                "no deflater: uncompressed");
        d.give(first);
        assertNotNull(d.take(1), "reused");
        assertEquals(1, d.made());
        d.give(first);
        d.close();
        assertEquals(0, d.made(), "ended at close");
        assertEquals(0, pool.made(), "and its budget given back");
    }

    static HttpParser.Request request(String method, String acceptEncoding) {
        Headers h = new Headers();
        if (acceptEncoding != null) h.add("Accept-Encoding", acceptEncoding);
        return new HttpParser.Request(method, "/", true, h, "x");
    }

    static HttpParser.Response response(String type) {
        return new HttpParser.Response(true, 200, "OK", headers("Content-Type", type));
    }

    static String inflated(byte[] gzip) throws Exception {
        Inflater inflater = new Inflater(true);
        inflater.setInput(gzip, 10, gzip.length - 10); // after the 10-byte header
        byte[] out = new byte[1 << 20];
        int n = inflater.inflate(out);
        inflater.end();
        return new String(out, 0, n, StandardCharsets.ISO_8859_1);
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.ISO_8859_1);
    }

    // ---- end to end -----------------------------------------------------------------

    /** Serves PAGE as text/html with a strong ETag, a Vary of its own and Accept-Ranges; 206 and 304 on asking. */
    static TestSupport.Handler site() {
        return (r, out, s) -> {
            String target = r.requestLine().split(" ")[1];
            String type = target.startsWith("/image") ? "image/png" : "text/html; charset=utf-8";
            String extra = switch (target) {
                case "/gzipped" -> "Content-Encoding: gzip\r\n";
                case "/no-transform" -> "Cache-Control: no-transform\r\n";
                default -> "";
            };
            boolean head = r.requestLine().startsWith("HEAD ");
            if (target.equals("/partial")) {
                out.write(bytes("HTTP/1.1 206 Partial Content\r\nContent-Type: text/html\r\nContent-Range: bytes 0-99/10240\r\n"
                        + "Content-Length: 100\r\n\r\n"));
                out.write(PAGE, 0, 100);
            } else if (target.equals("/not-modified")) {
                out.write(bytes("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Type: text/html\r\n\r\n"));
            } else {
                out.write(bytes("HTTP/1.1 200 OK\r\nContent-Type: " + type + "\r\nETag: \"v1\"\r\nVary: Cookie\r\n"
                        + "Accept-Ranges: bytes\r\n" + extra + "Content-Length: " + PAGE.length + "\r\n\r\n"));
                if (!head) out.write(PAGE);
            }
            return true;
        };
    }

    static String get(String target, String acceptEncoding) {
        return get("GET", target, acceptEncoding);
    }

    static String get(String method, String target, String acceptEncoding) {
        return method + " " + target + " HTTP/1.1\r\nHost: x\r\n"
                + (acceptEncoding == null ? "" : "Accept-Encoding: " + acceptEncoding + "\r\n") + "\r\n";
    }

    @Test
    void aPageGoesOutCompressedToAClientThatAcceptsIt() throws Exception {
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on");
             TestSupport.Client c = new TestSupport.Client(TestSupport.port(proxy))) {
            TestSupport.Response r = c.send(get("/", "gzip, deflate")).read();
            assertEquals(200, r.status());
            assertEquals("gzip", r.header("content-encoding"));
            assertTrue(r.chunked(), "chunked to an HTTP/1.1 client");
            assertNull(r.header("content-length"), "no upstream Content-Length");
            assertEquals("W/\"v1\"", r.header("etag"));
            assertEquals(List.of("Cookie, Accept-Encoding"), r.headers().get("vary"));
            assertNull(r.header("accept-ranges"));
            assertArrayEquals(PAGE, gunzip(r.body()));
            assertTrue(r.body().length < PAGE.length / 3, "compressed: " + r.body().length);
            assertEquals("gzip, deflate", backend.next().header("Accept-Encoding"), "passed on, as nginx does");
            // the connection stays open for the next request
            TestSupport.Response again = c.send(get("/", "gzip")).read();
            assertArrayEquals(PAGE, gunzip(again.body()));
        }
    }

    @Test
    void identityWhenTheClientDoesNotAcceptGzip() throws Exception {
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on")) {
            for (String ae : new String[] {null, "gzip;q=0", "identity", "br"}) {
                TestSupport.Response r = TestSupport.exchange(TestSupport.port(proxy), get("/", ae));
                assertNull(r.header("content-encoding"), String.valueOf(ae));
                assertEquals(Integer.toString(PAGE.length), r.header("content-length"));
                assertEquals("\"v1\"", r.header("etag"));
                assertEquals(List.of("Cookie, Accept-Encoding"), r.headers().get("vary"), "a cache must know it varies");
                assertArrayEquals(PAGE, r.body());
            }
        }
    }

    @Test
    void offIsUntouched() throws Exception {
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port())) {
            TestSupport.Response r = TestSupport.exchange(TestSupport.port(proxy), get("/", "gzip"));
            assertNull(r.header("content-encoding"));
            assertEquals(List.of("Cookie"), r.headers().get("vary"));
            assertArrayEquals(PAGE, r.body());
            assertEquals(0, proxy.buffers().deflaters.made());
        }
    }

    @Test
    void whatMustPassUntouched() throws Exception {
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on")) {
            int port = TestSupport.port(proxy);
            for (String target : new String[] {"/gzipped", "/no-transform", "/image.png"}) {
                TestSupport.Response r = TestSupport.exchange(port, get(target, "gzip"));
                assertEquals(Integer.toString(PAGE.length), r.header("content-length"), target);
                assertEquals("\"v1\"", r.header("etag"), target);
                assertArrayEquals(PAGE, r.body(), target);
                assertEquals(target.equals("/gzipped") ? "gzip" : null, r.header("content-encoding"), target);
            }
            TestSupport.Response partial = TestSupport.exchange(port, get("/partial", "gzip"));
            assertEquals(206, partial.status());
            assertNull(partial.header("content-encoding"));
            assertEquals("100", partial.header("content-length"));
            TestSupport.Response notModified = TestSupport.exchange(port, get("/not-modified", "gzip"));
            assertEquals(304, notModified.status());
            assertNull(notModified.header("content-encoding"));
            assertEquals("\"v1\"", notModified.header("etag"));
        }
    }

    @Test
    void aHeadGetsTheFieldsItsGetWouldGet() throws Exception {
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on");
             TestSupport.Client c = new TestSupport.Client(TestSupport.port(proxy))) {
            TestSupport.Response r = c.send(get("HEAD", "/", "gzip")).read(true);
            assertEquals(200, r.status());
            assertEquals("gzip", r.header("content-encoding"));
            assertEquals(List.of("Cookie, Accept-Encoding"), r.headers().get("vary"));
            assertNull(r.header("content-length"));
            assertEquals("W/\"v1\"", r.header("etag"));
            // no body: the next response on the connection is read right after the head
            TestSupport.Response next = c.send(get("/", null)).read();
            assertArrayEquals(PAGE, next.body());
        }
    }

    @Test
    void aLargeChunkedBodyStreamsThrough() throws Exception {
        byte[] big = page(8 << 20);
        TestSupport.Handler chunked = (r, out, s) -> {
            out.write(bytes("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
            for (int i = 0; i < big.length; i += 10_000) {
                int n = Math.min(10_000, big.length - i);
                out.write(bytes(Integer.toHexString(n) + "\r\n"));
                out.write(big, i, n);
                out.write(bytes("\r\n"));
            }
            out.write(bytes("0\r\n\r\n"));
            return true;
        };
        try (TestSupport.Backend backend = new TestSupport.Backend(chunked);
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on")) {
            TestSupport.Response r = TestSupport.exchange(TestSupport.port(proxy), get("/", "gzip"));
            assertEquals("gzip", r.header("content-encoding"));
            assertArrayEquals(big, gunzip(r.body()));
            assertTrue(proxy.buffers().made() <= proxy.buffers().budget());
        }
    }

    @Test
    void rawThenCloseToAnHttp10Client() throws Exception {
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on")) {
            TestSupport.Response r = TestSupport.exchange(TestSupport.port(proxy),
                    "GET / HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n");
            assertEquals("gzip", r.header("content-encoding"));
            assertFalse(r.chunked());
            assertNull(r.header("content-length"));
            assertArrayEquals(PAGE, gunzip(r.body()));
        }
    }

    @Test
    void theAccessLogCountsWhatWentOnTheWireAndTheRatio() throws Exception {
        Path log = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on", "access_log", log.toString(),
                     "log_format", "$status $body_bytes_sent $gzip_ratio")) {
            TestSupport.Response r = TestSupport.exchange(TestSupport.port(proxy), get("/", "gzip"));
            TestSupport.awaitLines(log, 1); // logged as the exchange ends, a moment after the client has it all
            TestSupport.exchange(TestSupport.port(proxy), get("/", null));
            String[] lines = TestSupport.awaitLines(log, 2).split("\n");
            assertEquals("200 " + r.body().length + " " + Gzip.ratio(PAGE.length, r.body().length), lines[0]);
            assertEquals("200 " + PAGE.length + " -", lines[1]);
        }
    }

    @Test
    void serverSentEventsArriveOneByOneCompressed() throws Exception {
        BlockingQueue<String> go = new LinkedBlockingQueue<>();
        TestSupport.Handler events = (r, out, s) -> {
            out.write(bytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n"));
            for (int i = 0; i < 5; i++) {
                byte[] event = bytes("data: event " + i + "\n\n");
                out.write(bytes(Integer.toHexString(event.length) + "\r\n"));
                out.write(event);
                out.write(bytes("\r\n"));
                out.flush();
                if (go.poll(TestSupport.WAIT.toMillis(), TimeUnit.MILLISECONDS) == null) return false; // the client never saw it
            }
            out.write(bytes("0\r\n\r\n"));
            return true;
        };
        try (TestSupport.Backend backend = new TestSupport.Backend(events);
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on");
             TestSupport.Client c = new TestSupport.Client(TestSupport.port(proxy))) {
            c.send(get("/events", "gzip"));
            String head = TestSupport.readHead(c.in);
            assertTrue(head.contains("Content-Encoding: gzip"), head);
            ByteArrayOutputStream compressed = new ByteArrayOutputStream();
            for (int i = 0; i < 5; i++) {
                String expected = "data: event " + i + "\n\n";
                // Reads chunks until the event is decodable: it must come before the next is sent.
                while (!inflated(compressed.toByteArray().length < 10 ? new byte[10] : compressed.toByteArray()).endsWith(expected)) {
                    int size = Integer.parseInt(TestSupport.readLine(c.in), 16);
                    assertTrue(size > 0, "the stream ended before event " + i);
                    compressed.write(TestSupport.readExactly(c.in, size));
                    TestSupport.readLine(c.in);
                }
                go.add("next");
            }
            // then the end of the stream: the gzip trailer, and the last chunk
            byte[] rest = TestSupport.readChunked(c.in, new ByteArrayOutputStream());
            compressed.write(rest);
            assertEquals("data: event 0\n\ndata: event 1\n\ndata: event 2\n\ndata: event 3\n\ndata: event 4\n\n",
                    new String(gunzip(compressed.toByteArray()), StandardCharsets.ISO_8859_1));
        }
    }

    @Test
    void aFloodOfCompressedDownloadsStaysWithinTheBudget() throws Exception {
        byte[] big = page(256 * 1024);
        int clients = 300;
        // The responses wait, half sent, until 50 clients have their heads: then 50 responses
        // are under way at once, each compressed or not already, and only 6 deflaters fit.
        java.util.concurrent.CountDownLatch together = new java.util.concurrent.CountDownLatch(50);
        TestSupport.Handler download = (r, out, s) -> {
            out.write(bytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + big.length + "\r\n\r\n"));
            out.write(big, 0, big.length / 2);
            out.flush();
            together.await(TestSupport.WAIT.toMillis(), TimeUnit.MILLISECONDS);
            out.write(big, big.length / 2, big.length - big.length / 2);
            return true;
        };
        try (TestSupport.Backend backend = new TestSupport.Backend(download);
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on", "buffer_memory", "4m");
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            int port = TestSupport.port(proxy);
            AtomicInteger compressed = new AtomicInteger();
            List<Future<byte[]>> all = new ArrayList<>();
            for (int i = 0; i < clients; i++) {
                Callable<byte[]> one = () -> {
                    try (TestSupport.Client c = new TestSupport.Client(port)) {
                        c.send(get("/", "gzip"));
                        String head = TestSupport.readHead(c.in);
                        together.countDown();
                        if (!head.contains("Content-Encoding: gzip")) return TestSupport.readExactly(c.in, big.length);
                        compressed.incrementAndGet();
                        return gunzip(TestSupport.readChunked(c.in, new ByteArrayOutputStream()));
                    }
                };
                all.add(pool.submit(one));
            }
            for (Future<byte[]> f : all) assertArrayEquals(big, f.get(50, TimeUnit.SECONDS));
            BufferPool buffers = proxy.buffers();
            int cap = (int) (buffers.budget() / 2 / Deflaters.COST);
            assertTrue(buffers.deflaters.made() <= cap, buffers.deflaters.made() + " deflaters, at most " + cap);
            assertTrue(buffers.made() <= buffers.budget(), "within buffer_memory");
            assertTrue(compressed.get() > 0, "some went out compressed");
            assertTrue(compressed.get() < clients, "and some not, when no deflater was free: " + compressed);
            assertEquals(buffers.deflaters.made(), buffers.deflaters.idle(), "every deflater given back");
            System.out.println("GzipTest flood: " + compressed.get() + " of " + clients + " compressed, "
                    + buffers.deflaters.made() + " deflaters");
        }
    }

    static boolean curlInstalled() {
        return Files.isExecutable(Path.of("/usr/bin/curl"));
    }

    @Test
    @org.junit.jupiter.api.condition.EnabledIf("curlInstalled")
    void curlCompressedGetsByteIdenticalContent() throws Exception {
        Path dir = Files.createTempDirectory(TestSupport.TEMP, "curl");
        try (TestSupport.Backend backend = new TestSupport.Backend(site());
             Proxy proxy = TestSupport.proxy(backend.port(), "gzip", "on")) {
            String url = "http://127.0.0.1:" + TestSupport.port(proxy) + "/";
            curl("-o", dir.resolve("plain").toString(), "-D", dir.resolve("plain.head").toString(), url);
            curl("--compressed", "-o", dir.resolve("gzip").toString(), "-D", dir.resolve("gzip.head").toString(), url);
            assertArrayEquals(PAGE, Files.readAllBytes(dir.resolve("plain")));
            assertArrayEquals(PAGE, Files.readAllBytes(dir.resolve("gzip")));
            assertFalse(Files.readString(dir.resolve("plain.head")).contains("Content-Encoding"));
            assertTrue(Files.readString(dir.resolve("gzip.head")).contains("Content-Encoding: gzip"));
        }
    }

    static void curl(String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("curl", "-sS", "--max-time", "10"));
        command.addAll(List.of(args));
        try (Child curl = Child.start(command)) {
            assertEquals(0, curl.waitFor(java.time.Duration.ofSeconds(15)), "curl:\n" + curl);
        }
    }

    @Test
    void configKeys() throws Exception {
        assertNull(Config.from(Map.of(), "t").gzip(), "off when the key is absent");
        Gzip.Settings s = Config.from(Map.of("gzip", "on"), "t").gzip();
        assertEquals(new Gzip.Settings(List.of(Gzip.DEFAULT_TYPES.split(" ")), 20, 1, true), s, "nginx's defaults");
        Gzip.Settings set = Config.from(Map.of("gzip", "on", "gzip_types", "text/html  application/*", "gzip_min_length", "1k",
                "gzip_comp_level", "6", "gzip_vary", "off"), "t").gzip();
        assertEquals(new Gzip.Settings(List.of("text/html", "application/*"), 1024, 6, false), set);
        assertNotNull(Config.load(Path.of("conf/proxy.properties")).gzip(), "on in the shipped file, as in the tutorial");
        Config.Invalid bad = org.junit.jupiter.api.Assertions.assertThrows(Config.Invalid.class, () -> Config.from(Map.of(
                "gzip", "yes", "gzip_types", "text/", "gzip_min_length", "-1", "gzip_comp_level", "10", "gzip_vary", "1"), "t"));
        assertEquals(5, bad.problems().size(), bad.getMessage());
    }
}
