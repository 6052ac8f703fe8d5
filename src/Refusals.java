import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.Semaphore;

/**
 * Connections over max_connections: each is answered 503 and closed gracefully, cheaply,
 * and the error log says so, at once for the first, then at most once per
 * {@link #REPORTED_EVERY} with the count since, so that a flood of refusals neither floods
 * the log nor goes unsaid.
 *
 * <p>Why gracefully: closing at once, with the client's request still unread, makes the
 * kernel send RST instead of FIN, and a reset can erase the 503 before the client reads it
 * (RFC 9112 9.6). So, like every other error answer, the refusal sends FIN and then reads
 * and drops what the client still sends, briefly, on a virtual thread of its own. These
 * connections are over the limit by definition, so they must stay cheap: at most
 * {@link #MAX_LINGERING} linger at once, each for at most {@link #LINGER} and 64 KiB
 * (Wire.lingeringClose); beyond that, a flood gets one non-blocking write and an
 * immediate close.
 */
final class Refusals {
    static final Duration REPORTED_EVERY = Duration.ofSeconds(1);

    /** Refused connections that may linger at once, and for how long each. */
    private static final int MAX_LINGERING = 64;
    private static final Duration LINGER = Duration.ofSeconds(1);

    private static final byte[] BUSY = ("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
            + "Connection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1);

    private final Semaphore lingering = new Semaphore(MAX_LINGERING);
    private final LogTally refused;

    Refusals(int maxConnections, Log log) {
        this.refused = new LogTally(log, REPORTED_EVERY, n -> "max_connections (" + maxConnections + ") reached: " + n
                + " connection" + (n == 1 ? "" : "s") + " refused");
    }

    /**
     * Refuses a connection accepted over max_connections; never waits for the client (it
     * runs on the accepting thread). A TLS client gets the close alone: a plain 503 would
     * reach it as a bad record, and a handshake is the work an overloaded proxy can least
     * afford.
     */
    void refuse(SocketChannel channel, boolean ssl) {
        refused.add(1);
        if (ssl) {
            Proxy.closeQuietly(channel);
            return;
        }
        if (!lingering.tryAcquire()) {
            try {
                channel.configureBlocking(false);
                channel.write(ByteBuffer.wrap(BUSY));
            } catch (IOException ignored) {
                // the client is gone already
            }
            Proxy.closeQuietly(channel);
            return;
        }
        try {
            Thread.ofVirtual().start(() -> linger(channel));
        } catch (RuntimeException | Error e) { // no thread for it (out of memory): closed at once
            lingering.release();
            Proxy.closeQuietly(channel);
        }
    }

    /** The 503, then FIN, then what the client still sends read and dropped, within bounds. */
    private void linger(SocketChannel channel) {
        try {
            Wire wire = new Wire(channel, 64, LINGER, LINGER);
            try {
                wire.write(BUSY);
            } catch (IOException ignored) {
                // the client is gone, or took no byte within the time: lingeringClose just closes
            }
            wire.lingeringClose(LINGER);
        } catch (IOException e) {
            Proxy.closeQuietly(channel); // the client was gone before we started
        } finally {
            lingering.release();
        }
    }
}
