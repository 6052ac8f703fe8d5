import java.io.IOException;
import java.time.Duration;

/**
 * After "101 Switching Protocols" (a WebSocket handshake), the connection is no longer
 * HTTP: bytes flow both ways, untouched, until both sides are done (RFC 9110 7.8). Each
 * direction runs on its own virtual thread. An end of stream on one side is passed on as
 * a half-close (shutdownOutput) to the other; an error or an idle direction (read_timeout,
 * as nginx's proxy_read_timeout for WebSockets) ends the whole tunnel.
 */
final class Tunnel {
    private Tunnel() {}

    static void run(Wire client, Wire upstream, Duration idle, BufferPool pool) {
        client.readTimeout(idle);
        upstream.readTimeout(idle);
        Thread toUpstream = Thread.ofVirtual().name("tunnel").start(() -> pump(client, upstream, pool));
        pump(upstream, client, pool);
        try {
            toUpstream.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Copies until end of stream, including bytes already buffered (sent right behind the handshake). */
    private static void pump(Wire from, Wire to, BufferPool pool) {
        try {
            Relay.copy(from, Body.UNTIL_CLOSE, to, Body.UNTIL_CLOSE, null, 0, pool);
            to.shutdownOutput();
        } catch (IOException | HttpError | RuntimeException | Error e) {
            from.closeQuietly(); // one direction failed: end both
            to.closeQuietly();
        }
    }
}
