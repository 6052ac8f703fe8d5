import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.locks.ReentrantLock;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;

/**
 * TLS over a client's socket: what {@link Wire} reads and writes through when its listener
 * says ssl, as Go's {@code tls.Server(conn)} wraps a {@code net.Conn}. The head reader, the
 * relay, the tunnel and the watchdog see plaintext and never know.
 *
 * <p>{@link #read} and {@link #write} have a socket's contract (a read may return 0 in
 * non-blocking mode, -1 at the end); behind them the {@link SSLEngine} unwraps records
 * into plaintext and wraps plaintext into records. The handshake runs inside the first
 * read, on the connection's virtual thread, so the deadline of that read bounds it:
 * client_header_timeout, from the accept (a client that sends nothing, or stalls in the
 * handshake, is closed then).
 *
 * <p>Three buffers: records received ({@code netIn}), plaintext not yet read
 * ({@code appIn}), records to send ({@code netOut}). They are slices of one buffer from
 * the {@link BufferPool}, taken at the first read and given back when the connection falls
 * idle with nothing buffered ({@link #release}): an idle TLS connection holds none. A
 * closed one gives them back too ({@link #free}).
 *
 * <p>One thread reads while another may write (a WebSocket, a request body sent while the
 * response comes): the engine allows wrap and unwrap at once; the writes, and a read that
 * must answer (the handshake, a key update), take turns on {@code writing}. A read holds
 * {@code reading}, so that {@link #free} can wait for it to let go of the buffers.
 */
final class TlsChannel {
    private static final byte HANDSHAKE_RECORD = 0x16; // RFC 8446 5.1: ContentType handshake
    private static final int RECORD_HEADER = 5;        // RFC 8446 5.1: type, version, length
    private static final ByteBuffer[] NOTHING = {ByteBuffer.allocate(0)};
    /** nginx's answer to plain HTTP on an HTTPS port (ngx_http_request.c: NGX_HTTP_TO_HTTPS). */
    static final String PLAIN_HTTP_TEXT = "The plain HTTP request was sent to HTTPS port\n";
    static final byte[] PLAIN_HTTP = ("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: "
            + PLAIN_HTTP_TEXT.length() + "\r\nConnection: close\r\n\r\n" + PLAIN_HTTP_TEXT).getBytes(StandardCharsets.ISO_8859_1);

    /** The first bytes were plain HTTP: answered with {@link #PLAIN_HTTP}, then the close. */
    static final class PlainHttp extends IOException {
        PlainHttp() {
            super("plain HTTP request sent to the HTTPS port");
        }
    }

    /**
     * What the error log says, at info as nginx does, of a TLS connection that ended before
     * its first request, or null: a handshake that failed, or timed out (client_header_timeout),
     * or plain HTTP sent to this port.
     */
    String failure(IOException e) {
        if (e instanceof HandshakeFailed || e instanceof PlainHttp) return e.getMessage();
        if (e instanceof Wire.Timeout && !established) return "TLS handshake timed out";
        return null;
    }

    /**
     * The handshake failed: no protocol or suite in common, a bad record, the client's own
     * alert. The client's doing, so the error log's line for it is info, as nginx's
     * "SSL_do_handshake() failed" is; the JDK's message says why.
     */
    static final class HandshakeFailed extends SSLException {
        HandshakeFailed(SSLException cause) {
            super("TLS handshake failed: " + why(cause), cause);
        }

        /** The JDK may wrap the reason: "Unexpected exception", caused by "...Alert: unknown_ca". */
        private static String why(SSLException e) {
            String outer = String.valueOf(e.getMessage());
            String inner = e.getCause() == null ? null : e.getCause().getMessage();
            return inner == null || outer.contains(inner) ? outer : outer + ": " + inner;
        }
    }

    private final SSLEngine engine;
    private final SocketChannel channel;
    private final BufferPool pool;
    private final ReentrantLock writing = new ReentrantLock();
    private final ReentrantLock reading = new ReentrantLock();
    private volatile ByteBuffer block; // the one buffer the three are cut from; null while idle
    private boolean pooled;            // block came from the pool (else the heap: the budget was spent)
    private ByteBuffer netIn, appIn;   // read mode: the bytes not yet taken are position..limit
    private ByteBuffer netOut;         // empty between writes
    private boolean started, checked; // checked: the first bytes were looked at
    private boolean freed;            // closed, the buffers given back: none may be taken again
    private volatile boolean established; // read by the access log's thread too

    TlsChannel(SSLEngine engine, SocketChannel channel, BufferPool pool) {
        this.engine = engine;
        this.channel = channel;
        this.pool = pool;
    }

    /** Plaintext into dst: > 0 bytes, 0 if none came (non-blocking), -1 after the client's close_notify. */
    int read(ByteBuffer dst) throws IOException {
        reading.lock();
        try {
            boolean held = block != null; // false: just back from idle, where bytes woke it: read them at once
            buffers();
            if (!started) {
                started = true;
                engine.beginHandshake();
            }
            return readRecords(dst, held);
        } catch (SSLException e) {
            // Around the whole loop, not only unwrap: the ClientHello is judged in a delegated
            // task, and its failure (TLS 1.1 only, no shared suite) comes out of the next wrap.
            sendAlert();
            throw established ? e : new HandshakeFailed(e);
        } finally {
            reading.unlock();
        }
    }

    /** The handshake's steps and the records' unwrapping, until plaintext, the end, or a non-blocking 0. */
    private int readRecords(ByteBuffer dst, boolean mayLetGo) throws IOException {
        while (true) {
            if (appIn.hasRemaining()) return take(dst);
            HandshakeStatus hs = engine.getHandshakeStatus();
            // Done: FINISHED comes out of a wrap or unwrap only, and not when a delegated
            // task made the last step (the client's Finished, in TLS 1.3), so look here too.
            if (hs == HandshakeStatus.NOT_HANDSHAKING) established = true;
            if (hs == HandshakeStatus.NEED_TASK) {
                for (Runnable task; (task = engine.getDelegatedTask()) != null; ) task.run();
                continue;
            }
            if (hs == HandshakeStatus.NEED_WRAP) {
                send(NOTHING);
                continue;
            }
            if (netIn.hasRemaining()) {
                appIn.clear();
                SSLEngineResult r;
                try {
                    r = engine.unwrap(netIn, appIn);
                } finally {
                    appIn.flip();
                }
                if (r.getHandshakeStatus() == HandshakeStatus.FINISHED) established = true;
                if (r.getStatus() == SSLEngineResult.Status.CLOSED) return appIn.hasRemaining() ? take(dst) : -1;
                if (r.getStatus() == SSLEngineResult.Status.BUFFER_OVERFLOW) throw new SSLException("TLS record too large");
                if (r.getStatus() == SSLEngineResult.Status.OK && (r.bytesConsumed() > 0 || r.bytesProduced() > 0)) continue;
            }
            if (engine.isInboundDone()) return -1;
            if (mayLetGo && !netIn.hasRemaining() && waitWithoutBuffers()) continue;
            int n = receive();
            if (n == 0) return 0;
            // A TCP close without close_notify may be an attacker cutting the stream
            // (RFC 8446 6.1): never the end of a message, always an abort.
            if (n < 0) throw new EOFException("TLS stream cut short (no close_notify)");
        }
    }

    /**
     * A failure: the engine has queued its fatal alert (protocol_version, handshake_failure,
     * bad_record_mac...), and the client should get it rather than a bare close (RFC 8446
     * 6.2). Best effort: a few bytes, written within the read's own deadline (the watchdog
     * closes the channel under a stuck write); a client gone gets none.
     */
    private void sendAlert() {
        try {
            for (int i = 0; i < 4 && !engine.isOutboundDone(); i++) send(NOTHING);
        } catch (IOException ignored) {
            // the client is gone: it needs no alert
        }
    }

    /** Plaintext from srcs, one record at most: wrapped and sent in full; returns the bytes taken. */
    long write(ByteBuffer[] srcs) throws IOException {
        long taken = send(srcs); // which takes the buffers, if the connection was idle
        if (taken == 0 && engine.getHandshakeStatus() != HandshakeStatus.NOT_HANDSHAKING) {
            // A TLS 1.2 renegotiation while this thread writes: refused (see Certificates).
            throw new SSLException("TLS renegotiation is not supported");
        }
        return taken;
    }

    /** Wraps what the engine makes of srcs (a record, or a handshake message) and sends it all. */
    private long send(ByteBuffer[] srcs) throws IOException {
        writing.lock();
        try {
            buffers(); // the reader may have given them back meanwhile (waitWithoutBuffers); freed: closed
            netOut.clear();
            SSLEngineResult r;
            try {
                r = engine.wrap(srcs, netOut);
            } finally {
                netOut.flip();
            }
            if (r.getHandshakeStatus() == HandshakeStatus.FINISHED) established = true;
            while (netOut.hasRemaining()) {
                if (channel.write(netOut) == 0) Thread.yield(); // non-blocking (a key update while idle): rare, brief
            }
            if (r.getStatus() == SSLEngineResult.Status.CLOSED && srcs != NOTHING) throw new SSLException("TLS connection closed");
            if (r.getStatus() == SSLEngineResult.Status.BUFFER_OVERFLOW) throw new SSLException("TLS record too large");
            return r.bytesConsumed();
        } finally {
            writing.unlock();
        }
    }

    /**
     * Between records, with nothing held (all that came was unwrapped and taken), a blocking
     * read waits for the next record without the buffers, as nginx has OpenSSL do
     * (SSL_MODE_RELEASE_BUFFERS): a client that pauses in the middle of a request (a slow
     * head, an upload that stops) then holds none of buffer_memory, as a plain one holds no
     * transfer buffer. Its first bytes come into a small buffer of their own; then the
     * buffers are taken again and the record is read on. False if the buffers stay (a
     * handshake, a non-blocking read, a write in progress on another thread). Not tried by
     * a read that had to take them first: a connection woken from idle has bytes waiting.
     */
    private boolean waitWithoutBuffers() throws IOException {
        if (!established || appIn.hasRemaining() || !channel.isBlocking() || !writing.tryLock()) return false;
        try {
            if (block == null) return false; // (no write is under way: send() holds the lock until all is out)
            letGo();
        } finally {
            writing.unlock();
        }
        ByteBuffer first = ByteBuffer.allocate(RECORD_HEADER);
        int n = channel.read(first); // parks until the client sends again (the read's deadline holds)
        if (n < 0) throw new EOFException("TLS stream cut short (no close_notify)");
        buffers();
        netIn.compact().put(first.flip()).flip();
        return true;
    }

    /** Reads records from the socket into netIn; the first bytes decide whether this is TLS at all. */
    private int receive() throws IOException {
        netIn.compact();
        int n;
        try {
            if (!netIn.hasRemaining()) throw new SSLException("TLS record larger than the protocol allows");
            n = channel.read(netIn);
        } finally {
            netIn.flip();
        }
        if (!checked && netIn.hasRemaining()) {
            checked = true;
            byte first = netIn.get(0);
            if (first != HANDSHAKE_RECORD && first >= 'A' && first <= 'Z') { // a method: GET, POST...
                ByteBuffer answer = ByteBuffer.wrap(PLAIN_HTTP);
                while (answer.hasRemaining()) channel.write(answer);
                throw new PlainHttp();
            }
        }
        return n;
    }

    private int take(ByteBuffer dst) {
        int n = Math.min(dst.remaining(), appIn.remaining());
        int limit = appIn.limit();
        appIn.limit(appIn.position() + n);
        dst.put(appIn);
        appIn.limit(limit);
        return n;
    }

    /**
     * Sends close_notify (RFC 8446 6.1), if the handshake was made: the client can then tell
     * our last response is complete. Wire.lingeringClose calls it before the FIN. An idle
     * connection (keepalive_timeout, a stop) takes buffers again for it, since the RFC wants
     * it before every close, and gives them back at once, not after the lingering close: a
     * stop closes every idle connection at the same moment. Idle means no read is under
     * way: a tunnel's half-close (Wire.shutdownOutput) may come while its other direction
     * waits between records without the buffers, and that read takes them back itself.
     */
    void closeNotify() throws IOException {
        if (!established) return;
        boolean idle = block == null && reading.tryLock(); // a waiting read holds the lock
        try {
            engine.closeOutbound();
            for (int i = 0; i < 4 && !engine.isOutboundDone(); i++) send(NOTHING); // send takes the buffers
            if (idle) release();
        } finally {
            if (idle) reading.unlock();
        }
    }

    /** True if plaintext or records are waiting here, where a selector can't see them. */
    boolean hasBuffered() {
        return block != null && (appIn.hasRemaining() || netIn.hasRemaining());
    }

    /** Idle: the buffers go back to the pool, unless something waits in them. */
    void release() {
        writing.lock(); // as every other change of the buffers
        try {
            if (block != null && !hasBuffered()) letGo();
        } finally {
            writing.unlock();
        }
    }

    /**
     * The connection is closed: its buffers go back to the pool, whatever they hold (without
     * this, each TLS connection that ends busy would keep 64 KiB of the budget for good).
     * Call it once the socket is closed: a thread still in a read or write (an upload, a
     * tunnel's other direction) then fails at once and lets go of them, and none can take
     * new ones after.
     */
    void free() {
        reading.lock();
        writing.lock();
        try {
            freed = true;
            if (block != null) letGo();
        } finally {
            writing.unlock();
            reading.unlock();
        }
    }

    /** Gives the block back (to the pool, if it came from there) and drops its slices; under {@code writing}. */
    private void letGo() {
        if (pooled) pool.give(block);
        block = null;
        netIn = appIn = netOut = null;
    }

    /** The three buffers, cut from one pool buffer if the budget allows, else from the heap. */
    private void buffers() throws ClosedChannelException {
        if (block != null) return;
        writing.lock(); // a writer on another thread may want them at the same moment
        try {
            if (freed) throw new ClosedChannelException();
            if (block != null) return;
            int packet = engine.getSession().getPacketBufferSize();
            int app = engine.getSession().getApplicationBufferSize();
            ByteBuffer b = 2 * packet + app <= BufferPool.SMALL ? pool.take(BufferPool.SMALL) : null;
            pooled = b != null;
            if (b == null) b = ByteBuffer.allocate(2 * packet + app);
            netIn = b.slice(0, packet).flip();
            appIn = b.slice(packet, app).flip();
            netOut = b.slice(packet + app, packet);
            block = b;
        } finally {
            writing.unlock();
        }
    }

    // ---- for the access log ----------------------------------------------------------

    /** $ssl_protocol: TLSv1.3, TLSv1.2. */
    String protocol() {
        return established ? engine.getSession().getProtocol() : null;
    }

    /** $ssl_cipher: the suite, by the JDK's (IANA's) name. */
    String cipher() {
        return established ? engine.getSession().getCipherSuite() : null;
    }

    /** $ssl_server_name: the name the client asked for (SNI), or null. */
    String serverName() {
        return established ? Certificates.requestedName(engine.getSession()) : null;
    }
}
