import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.io.OutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The response is read while the request body is still being sent ({@link Upload}): an
 * upstream may answer early, or stream its answer while it reads the request.
 */
@Timeout(30)
class FullDuplexTest {
    /** A server that reads only the head, answers 413 at once and closes, as an app with a body limit does. */
    @Test
    void anEarlyAnswerToAnUploadReachesTheClient() throws Exception {
        try (var server = new java.net.ServerSocket(0, 10, java.net.InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (var s = server.accept()) {
                    TestSupport.readHead(s.getInputStream()); // the head only, none of the body
                    s.getOutputStream().write(TestSupport.bytes(
                            "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n"));
                    s.getOutputStream().flush();
                    s.shutdownOutput();
                    s.getInputStream().readNBytes(200_000); // as a server lingering before its close
                } catch (Exception ignored) {
                    // the proxy closed
                }
            });
            try (var proxy = TestSupport.proxy(server.getLocalPort(), "client_max_body_size", "0");
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n");
                client.out.write(new byte[64 * 1024]); // a part of the body; the rest never comes
                client.out.flush();
                var resp = client.read();
                assertEquals(413, resp.status(), "the upstream's early answer, not a 502");
                assertEquals("too big\n", resp.bodyText());
                assertEquals("close", resp.header("Connection"), "the unread rest of the body ends the connection");
                assertTrue(client.closedByPeerOrReset(), "then it is closed");
            }
        }
    }

    /**
     * An early answer that says the server will close, and takes its time: longer than
     * client_body_timeout, while the client sends no more of its body. That body is not wanted
     * any more, so its timeout must not end the client connection under the answer.
     */
    @Test
    void anEarlyAnswerSlowerThanClientBodyTimeoutArrivesWhole() throws Exception {
        try (var server = new java.net.ServerSocket(0, 10, java.net.InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (var s = server.accept()) {
                    TestSupport.readHead(s.getInputStream()); // the head only, none of the body
                    OutputStream out = s.getOutputStream();
                    out.write(TestSupport.bytes("HTTP/1.1 403 Forbidden\r\nContent-Length: 30\r\nConnection: close\r\n\r\n"));
                    for (int i = 0; i < 3; i++) { // 30 bytes over 0.9 s, three times client_body_timeout
                        out.write(TestSupport.bytes("0123456789"));
                        out.flush();
                        Thread.sleep(300);
                    }
                    s.shutdownOutput();
                    s.getInputStream().readNBytes(200_000);
                } catch (Exception ignored) {
                    // the proxy closed
                }
            });
            try (var proxy = TestSupport.proxy(server.getLocalPort(), "client_max_body_size", "0",
                    "client_body_timeout", "300ms");
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n0123456789");
                var resp = client.read(); // the client sends nothing more
                assertEquals(403, resp.status());
                assertEquals("012345678901234567890123456789", resp.bodyText(), "the whole answer");
                assertTrue(client.closedByPeerOrReset(), "then the connection closes");
            }
        }
    }

    @Test
    void anUpstreamStreamsItsAnswerWhileItReadsTheRequest() throws Exception {
        // An echo: each chunk of the request goes back as a chunk of the response at once.
        try (var server = new java.net.ServerSocket(0, 10, java.net.InetAddress.getLoopbackAddress())) {
            Thread.ofVirtual().start(() -> {
                try (var s = server.accept()) {
                    InputStream in = s.getInputStream();
                    OutputStream out = s.getOutputStream();
                    TestSupport.readHead(in);
                    out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
                    out.flush();
                    while (true) {
                        int size = Integer.parseInt(TestSupport.readLine(in).strip(), 16);
                        byte[] data = in.readNBytes(size);
                        TestSupport.readLine(in); // the CRLF after the data; after the last chunk, the end of the trailers
                        if (size == 0) break;
                        out.write(TestSupport.bytes(Integer.toHexString(size) + "\r\n"));
                        out.write(data);
                        out.write(TestSupport.bytes("\r\n"));
                        out.flush();
                    }
                    out.write(TestSupport.bytes("0\r\n\r\n"));
                    out.flush();
                } catch (Exception ignored) {
                    // the test reports what went wrong
                }
            });
            try (var proxy = TestSupport.proxy(server.getLocalPort());
                 var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
                String head = TestSupport.readHead(client.in);
                assertTrue(head.startsWith("HTTP/1.1 200"), "the head came before the body was sent: " + head);
                for (String piece : new String[] {"first", "second", "third"}) {
                    client.send(Integer.toHexString(piece.length()) + "\r\n" + piece + "\r\n");
                    // The echo of this chunk arrives before the next is sent: nothing waits for the whole body.
                    int size = Integer.parseInt(TestSupport.readLine(client.in).strip(), 16);
                    assertEquals(piece, TestSupport.text(client.in.readNBytes(size)));
                    TestSupport.readLine(client.in);
                }
                client.send("0\r\n\r\n");
                assertEquals("0", TestSupport.readLine(client.in).strip(), "the response ends after the request");
            }
        }
    }

    @Test
    void readTimeoutCountsFromTheEndOfTheBody() throws Exception {
        // read_timeout 400ms; the body takes about 1.2 s to arrive, and the answer comes
        // right after it: 200, not 504.
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(), "read_timeout", "400ms");
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n");
            for (int i = 0; i < 4; i++) {
                Thread.sleep(300);
                client.send("x");
            }
            var resp = client.read();
            assertEquals(200, resp.status());
            assertEquals("xxxx", TestSupport.text(backend.next().body()));
            // and read_timeout still holds afterwards: the connection goes on as usual
            assertEquals(200, client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n").read().status());
        }
    }

    @Test
    void aClientThatLeavesMidUploadIs499AndNoErrorOfTheUpstreams() throws Exception {
        var access = java.nio.file.Files.createTempFile(TestSupport.TEMP, "access", ".log");
        var errors = java.nio.file.Files.createTempFile(TestSupport.TEMP, "error", ".log");
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(),
                "access_log", access.toString(), "error_log", errors.toString() + " info")) {
            try (var client = new TestSupport.Client(TestSupport.port(proxy))) {
                client.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
                Thread.sleep(100); // the head has gone upstream, the body is on its way (an Upload)
                client.send("0123456789");
            } // and the client is gone
            backend.nextEnded(); // the upstream saw its body cut short: the proxy closed that connection
            String line = TestSupport.awaitLines(access, 1);
            assertTrue(line.contains("\"POST /upload HTTP/1.1\" 499 "), line);
            String log = TestSupport.awaitText(errors, "client went away");
            assertTrue(log.contains("[info]"), log);
            assertTrue(!log.contains("[error]"), "the client's leaving is no error of the upstream's: " + log);
        }
    }
}
