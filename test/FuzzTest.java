import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.net.InetSocketAddress;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Mutates valid messages byte by byte (fixed seeds, a bounded count) and checks that the
 * parser never hangs or throws anything but its own {@link HttpError}, and that whatever it
 * accepts it re-serialises with the same reading: same method, target, Host and framing.
 */
@Timeout(120)
class FuzzTest {
    private static final int CASES = 1500;
    private static final byte[] INTERESTING = TestSupport.bytes("\r\n \t:;,=\"\\\0\u000b\u000c\u0085\u00a0/?#%0aF-_");

    private static final List<String> REQUESTS = List.of(
            "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 5\r\nX: y\r\n\r\n",
            "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
            "GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
            "OPTIONS * HTTP/1.0\r\n\r\n");

    private static final List<String> RESPONSES = List.of(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");

    static String mutate(String s, Random r) {
        StringBuilder b = new StringBuilder(s);
        int edits = 1 + r.nextInt(3);
        for (int i = 0; i < edits && b.length() > 1; i++) {
            int at = r.nextInt(b.length());
            char c = (char) (INTERESTING[r.nextInt(INTERESTING.length)] & 0xff);
            switch (r.nextInt(4)) {
                case 0 -> b.setCharAt(at, c);
                case 1 -> b.insert(at, c);
                case 2 -> b.deleteCharAt(at);
                default -> b.setCharAt(at, (char) r.nextInt(256));
            }
        }
        return b.toString();
    }

    @Test
    void mutatedRequestsAreRejectedOrReadTheSameWayTwice() throws Exception {
        Random r = new Random(9112);
        Config config = Config.from(Map.of(), "fuzz");
        Config.Server server = config.upstream().get(0);
        int accepted = 0;
        for (int i = 0; i < CASES; i++) {
            String input = mutate(REQUESTS.get(i % REQUESTS.size()), r);
            TestSupport.Parsed first;
            try {
                first = TestSupport.parseRequest(input, 8192, 16384);
            } catch (HttpError e) {
                assertTrue(e.status >= 400 && e.status < 600, "status " + e.status);
                continue;
            } catch (Exception e) {
                fail("input " + escape(input) + " threw " + e, e);
                return;
            }
            accepted++;
            String host = first.request().host();
            byte[] out = Forwarding.requestHead(first.request(), first.body(), new InetSocketAddress("127.0.0.1", 1),
                    config, server, null, false);
            TestSupport.Parsed again;
            try {
                again = TestSupport.parseRequest(TestSupport.text(out), 8192, 16384);
            } catch (HttpError e) {
                fail("accepted " + escape(input) + " but re-serialised it as " + escape(TestSupport.text(out)) + ": " + e.getMessage());
                return;
            }
            String what = escape(input);
            assertEquals(first.request().method(), again.request().method(), what);
            assertEquals(first.request().target(), again.request().target(), what);
            assertEquals(first.body(), again.body(), what);
            if (host != null) assertEquals(host, again.request().host(), what);
        }
        assertTrue(accepted > CASES / 20, "the mutations are mild enough that some are accepted: " + accepted);
    }

    @Test
    void mutatedResponsesAreRejectedWith502OrFramedOnce() throws Exception {
        Random r = new Random(7230);
        int accepted = 0;
        for (int i = 0; i < CASES; i++) {
            String input = mutate(RESPONSES.get(i % RESPONSES.size()), r);
            try {
                Body body = TestSupport.responseBody(input, "GET");
                assertTrue(body != null);
                accepted++;
            } catch (HttpError e) {
                assertEquals(502, e.status, escape(input));
            } catch (Exception e) {
                fail("input " + escape(input) + " threw " + e, e);
            }
        }
        assertTrue(accepted > CASES / 20, "some mutations are accepted: " + accepted);
    }

    @Test
    void mutatedChunkSizeLinesNeverThrowAnythingElse() {
        Random r = new Random(1);
        List<String> lines = List.of("5", "1a;name=value", "ff ; a = \"q\\\"x\"", "0");
        for (int i = 0; i < CASES * 4; i++) {
            String line = mutate(lines.get(i % lines.size()), r);
            try {
                long size = Relay.chunkSize(line);
                assertTrue(size >= 0, escape(line));
            } catch (HttpError e) {
                assertEquals(400, e.status, escape(line));
            } catch (RuntimeException e) {
                fail("chunk line " + escape(line) + " threw " + e, e);
            }
        }
    }

    static String escape(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c >= 0x20 && c < 0x7f) b.append(c);
            else b.append(String.format("\\x%02x", (int) c));
        }
        return b.toString();
    }
}
