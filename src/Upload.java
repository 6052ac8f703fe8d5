import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;

/**
 * A request body on its way to the upstream, sent on a virtual thread of its own while the
 * connection's thread reads the response: full duplex, as HTTP/1.1 allows (RFC 9112 9.5:
 * a server may answer before it has read the whole request). So an upstream that answers
 * early (413 while a large upload is still arriving, 401, a redirect) gets its answer to
 * the client, and one that streams its response while it reads the request (an echo of a
 * chunked upload) works, with neither body kept whole anywhere.
 *
 * <p>Only a body that is not already in memory goes this way; one that came with the head
 * is written with it, on the connection's thread (ProxyPass.sendRequest).
 *
 * <p>The upstream's read_timeout counts from the end of the body, as nginx's does: while
 * the body is still arriving, the wait for the response is bounded by the body's own
 * timeouts (client_body_timeout, send_timeout), which end the upload, and with it the
 * upstream connection, when one runs out.
 */
final class Upload {
    /**
     * How long the wait for the response may last while the body is still being sent: as
     * long as the body takes, each of its reads and writes bounded by its own timeout.
     */
    static final Duration WHILE_SENDING = Duration.ofDays(1);

    private final Wire client;
    private final Thread thread;
    private volatile boolean sent;       // the whole body went out
    private volatile Throwable failure;  // why it did not: Relay.ReadFailed, Relay.WriteFailed, HttpError, an Error
    private volatile boolean abandoned;  // the response has begun or is done: what is left is not forwarded

    private Upload(Wire client, Runnable send) {
        this.client = client;
        this.thread = Thread.ofVirtual().unstarted(send);
    }

    /**
     * Starts sending {@code head} and the body from the client to the upstream connection.
     * When the client's body fails, it closes the upstream connection: that way the upstream
     * never takes a truncated body for a whole one, and the thread waiting for its response
     * wakes.
     */
    static Upload start(Wire client, Body body, Upstreams.Connection up, ByteBuffer head, long limit,
                        BufferPool pool, Duration readTimeout) {
        Upload[] self = new Upload[1];
        self[0] = new Upload(client, () -> {
            Upload u = self[0];
            try {
                Relay.copy(client, body, up.wire(), body, head, limit, pool);
                u.sent = true;
                up.wire().restartReadTimeout(readTimeout); // the wait for the response starts now
            } catch (Relay.WriteFailed e) {
                // The upstream stopped reading: it may have answered early and closed (its
                // answer is still to be read), or it is stuck (send_timeout): then wake the
                // thread waiting for its response.
                if (!u.abandoned) u.failure = e;
                if (e.getCause() instanceof Wire.Timeout) up.close();
            } catch (IOException | HttpError | RuntimeException e) {
                // Stopped (the response is still coming on this connection) or abandoned (the
                // connection is closed already): nothing to do. Else the client's body failed,
                // and the upstream must not take it as whole.
                if (u.abandoned) return;
                u.failure = e;
                up.close();
            } catch (Error e) {
                // Out of memory, say: the thread waiting for the response must not wait for a
                // body that will never go (WHILE_SENDING); it reports this as its own failure.
                // Stopped, the response is still coming on the connection: it is left to end.
                u.failure = e;
                if (!u.abandoned) up.close();
            }
        });
        self[0].thread.start();
        return self[0];
    }

    /** True once the whole body has gone out. */
    boolean sent() {
        return sent;
    }

    /**
     * Whether the upload ends within a moment: a response that came as the last of the
     * body went out finds the thread that sent it about to say so. A real early answer (to
     * an upload the server doesn't read) waits this moment once: {@link #GRACE}.
     */
    boolean finishing() {
        try {
            return await(GRACE) && sent;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private static final Duration GRACE = Duration.ofMillis(20);

    /** Why the upload failed, or null (so far). */
    Throwable failure() {
        return failure;
    }

    /**
     * The response has begun before the body was all sent: stop sending. Its connection is
     * shut for writing (FIN: the upstream sees its body end short, so it can't take it as
     * whole), which also ends a write that waits for the upstream to read, while the
     * response keeps coming on the same connection. The client's body is not wanted any
     * more, so its client_body_timeout no longer applies: a client that has stopped sending
     * it still gets the whole response (the read ends with the exchange: {@link #abandon}).
     */
    void stop(Upstreams.Connection up) {
        abandoned = true;
        client.restartReadTimeout(WHILE_SENDING);
        try {
            up.wire().channel.shutdownOutput();
        } catch (IOException e) {
            // closed already: the upload ends all the same
        }
    }

    /** Waits for the upload to end, at most {@code within}; returns whether it did. */
    boolean await(Duration within) throws InterruptedException {
        return thread.join(within);
    }

    /**
     * The response is complete, or failed, before the body was all sent: the rest of it is
     * not forwarded. Call it once the upstream connection is closed (which ends a write in
     * progress), and close the client connection after it. The upload ends as soon as its
     * read from the client returns; after {@code linger} it is interrupted, and since that
     * closes the channel it reads (the client's, closing anyway), it ends then.
     */
    void abandon(Duration linger) throws InterruptedException {
        abandoned = true;
        if (!thread.join(linger)) {
            thread.interrupt();
            thread.join(linger);
        }
    }
}
