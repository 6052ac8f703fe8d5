import java.io.Closeable;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.time.Duration;

/**
 * One TCP connection, to a client or to an upstream server: a blocking {@link SocketChannel}
 * (on a virtual thread, blocking is cheap), a read buffer, and the deadlines that the
 * {@link Watchdog} enforces.
 *
 * <p>The read buffer {@link #in} is kept in "read mode": the unread bytes are those between
 * its position and its limit. It starts small (an idle keep-alive connection should hold
 * little memory) and grows only while a large head is being read. Bodies don't pass
 * through it once it is empty: {@link #read} then reads straight into the caller's buffer.
 *
 * <p>Message heads and the lines of a chunked body are read off it by {@link HeadReader}.
 */
final class Wire implements Closeable, Watchdog.Watched {
    /** Thrown when a read or write did not finish before its deadline. */
    static final class Timeout extends IOException {
        Timeout(String what) {
            super(what + " timed out");
        }
    }

    /** The read buffer of an idle connection: none. Never written to (see {@link #release}). */
    private static final ByteBuffer NONE = ByteBuffer.allocate(0);

    final SocketChannel channel;
    final TlsChannel tls; // null: plain; else every read and write goes through TLS
    final InetSocketAddress remote;
    private final int initialBuffer;
    ByteBuffer in;

    private volatile long readTimeoutNanos; // each read must finish within this...
    private long fixedReadDeadline;  // ...unless all reads must finish by this instant (0 = none)
    private final long sendTimeoutNanos;
    // The deadline of the read (write) in progress: 0 = none, CLAIMED = the watchdog has
    // taken it as timed out. Set and cleared with atomic swaps (see expireIfOverdue).
    private volatile long readDeadline;
    private volatile long writeDeadline;
    private volatile boolean expired;
    private static final long CLAIMED = Long.MIN_VALUE;
    private static final VarHandle READ_DEADLINE;
    private static final VarHandle WRITE_DEADLINE;

    static {
        try {
            MethodHandles.Lookup lookup = MethodHandles.lookup();
            READ_DEADLINE = lookup.findVarHandle(Wire.class, "readDeadline", long.class);
            WRITE_DEADLINE = lookup.findVarHandle(Wire.class, "writeDeadline", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    Wire(SocketChannel channel, int initialBuffer, Duration readTimeout, Duration sendTimeout) throws IOException {
        this(channel, null, initialBuffer, readTimeout, sendTimeout);
    }

    /** A wire whose bytes go through TLS ({@code tls} not null), as a client's on an ssl listener. */
    Wire(SocketChannel channel, TlsChannel tls, int initialBuffer, Duration readTimeout, Duration sendTimeout)
            throws IOException {
        this.channel = channel;
        this.tls = tls;
        this.remote = (InetSocketAddress) channel.getRemoteAddress();
        this.initialBuffer = initialBuffer;
        this.in = NONE; // made on the first read: a connection that is only written to holds none
        this.readTimeoutNanos = readTimeout.toNanos();
        this.sendTimeoutNanos = sendTimeout.toNanos();
        Watchdog.watch(this);
    }

    // ---- deadlines -------------------------------------------------------------------

    /** From now on, each read may wait at most this long (e.g. client_body_timeout). */
    void readTimeout(Duration perRead) {
        readTimeoutNanos = perRead.toNanos();
        fixedReadDeadline = 0;
    }

    /**
     * From another thread: the read in progress, if any, may wait this long from now, and
     * so may each later one. (Full duplex: a response's read_timeout counts from the end of
     * the request body, which another thread sends; see {@link Upload}.)
     */
    void restartReadTimeout(Duration perRead) {
        readTimeoutNanos = perRead.toNanos();
        long r = readDeadline;
        if (r != 0 && r != CLAIMED) READ_DEADLINE.compareAndSet(this, r, nonZero(System.nanoTime() + readTimeoutNanos));
    }

    /** From now on, all reads together must be done within this time (e.g. client_header_timeout). */
    void readDeadline(Duration total) {
        fixedReadDeadline = nonZero(System.nanoTime() + total.toNanos());
    }

    /**
     * Called by the watchdog: if the read or write in progress is past its deadline, claims
     * it and closes the channel, which wakes the blocked thread. The claim is an atomic swap
     * of the very deadline that was found overdue: if that operation finished meanwhile
     * (and the wire went on to its next exchange), the swap fails and nothing is closed. And
     * an operation that finishes just after the claim reports the timeout itself, since its
     * channel is being closed under it.
     */
    @Override
    public void expireIfOverdue(long now) {
        long r = readDeadline, w = writeDeadline;
        if (r != 0 && r != CLAIMED && now - r > 0) expire(READ_DEADLINE, r);
        if (w != 0 && w != CLAIMED && now - w > 0) expire(WRITE_DEADLINE, w);
    }

    /** Expires the read whose deadline was {@code seen}, if it is still the one in progress. */
    boolean expireRead(long seen) {
        return expire(READ_DEADLINE, seen);
    }

    /** Claims the operation whose deadline was {@code seen}, if it is still in progress, and closes. */
    private boolean expire(VarHandle deadline, long seen) {
        if (!deadline.compareAndSet(this, seen, CLAIMED)) return false;
        expired = true;
        closeQuietly();
        return true;
    }

    /** The deadline of the read in progress, 0 if none (for tests). */
    long readDeadlineNow() {
        return readDeadline;
    }

    private static long nonZero(long t) {
        return t == 0 || t == CLAIMED ? 1 : t;
    }

    // ---- reading ---------------------------------------------------------------------

    /** Reads more bytes into {@link #in}, growing it if it is full. False at end of stream. */
    boolean fill() throws IOException {
        ensureBuffer();
        in.compact();
        if (!in.hasRemaining()) {
            // A head that didn't fit the small idle buffer is likely a few KiB (a browser's
            // cookies): jump to 4 KiB at once rather than reading it in small steps.
            ByteBuffer bigger = ByteBuffer.allocate(Math.max(in.capacity() * 2, 4096));
            bigger.put(in.flip());
            in = bigger;
        }
        try {
            return channelRead(in) >= 0;
        } finally {
            in.flip();
        }
    }

    /**
     * Bytes are expected any moment (the response to a request just sent): let the other
     * virtual threads run first, so that the read which follows mostly finds them there. A
     * blocking read on a virtual thread tries the read itself first (the JDK keeps the
     * socket non-blocking underneath) and only when nothing has come does it park with the
     * JDK's poller: epoll_ctl, park, a wake-up, a second read. After a yield the answer is
     * mostly there already (at 64 connections: 8.6 system calls per proxied request instead
     * of 10.1, `perf stat`).
     */
    void yieldBeforeRead() {
        if (!in.hasRemaining()) Thread.yield();
    }

    /**
     * For a channel in non-blocking mode: reads what has arrived, without waiting. True if
     * anything was read, or the peer closed (the next read will see the end of stream).
     */
    boolean fillNow() throws IOException {
        ensureBuffer();
        in.compact();
        try {
            return (tls == null ? channel.read(in) : tls.read(in)) != 0;
        } finally {
            in.flip();
        }
    }

    /** The one place that reads from the channel: arms the read deadline around the call. */
    private int channelRead(ByteBuffer dst) throws IOException {
        return channelRead(dst, false);
    }

    /** raw: past TLS, the bytes as they come (a closing connection discards them). */
    private int channelRead(ByteBuffer dst, boolean raw) throws IOException {
        long perRead = readTimeoutNanos;
        long deadline = fixedReadDeadline != 0 ? fixedReadDeadline : nonZero(System.nanoTime() + perRead);
        readDeadline = deadline;
        // A restartReadTimeout from another thread just now found no read in progress: take
        // its timeout here (both fields volatile: one of the two threads sees the other's).
        if (fixedReadDeadline == 0 && readTimeoutNanos != perRead) {
            READ_DEADLINE.compareAndSet(this, deadline, nonZero(System.nanoTime() + readTimeoutNanos));
        }
        int n;
        try {
            n = tls == null || raw ? channel.read(dst) : tls.read(dst); // TLS: the first read makes the handshake
        } catch (IOException e) {
            READ_DEADLINE.setVolatile(this, 0L);
            throw expired ? new Timeout("read from " + remote) : e;
        }
        if ((long) READ_DEADLINE.getAndSet(this, 0L) == CLAIMED) throw new Timeout("read from " + remote);
        return n;
    }

    /** Up to {@code max} of the buffered bytes, consumed, as a view of {@link #in} (no copy). */
    ByteBuffer takeBuffered(long max) {
        int n = (int) Math.min(max, in.remaining());
        ByteBuffer piece = in.slice(in.position(), n);
        if (n > 0) in.position(in.position() + n);
        return piece;
    }

    /**
     * Reads up to {@code max} bytes from the channel into dst, bypassing {@link #in}: call it
     * only once the buffered bytes are taken. Returns -1 at end of stream.
     */
    int readChannel(ByteBuffer dst, long max) throws IOException {
        int n = (int) Math.min(max, dst.remaining());
        int limit = dst.limit();
        dst.limit(dst.position() + n);
        try {
            return channelRead(dst);
        } finally {
            dst.limit(limit);
        }
    }

    /** A connection that holds no read buffer (see {@link #release}) makes one to read into. */
    private void ensureBuffer() {
        if (in == NONE) in = ByteBuffer.allocate(initialBuffer).flip();
    }

    /** Idle and empty: drop the read buffer; the next read makes a new one. */
    void release() {
        if (!in.hasRemaining()) in = NONE;
        if (tls != null) tls.release();
    }

    /** Once idle and empty, give a grown buffer back so idle connections stay small. */
    void shrink() {
        if (in.capacity() > initialBuffer && in.remaining() <= initialBuffer) {
            ByteBuffer small = ByteBuffer.allocate(initialBuffer);
            small.put(in).flip();
            in = small;
        }
    }

    /**
     * For an idle pooled connection: true if the peer has closed it or sent bytes nobody
     * asked for. Either way it must not carry another request. Reads without blocking.
     */
    boolean isStale() {
        if (in.hasRemaining()) return true;
        ensureBuffer();
        try {
            channel.configureBlocking(false);
            in.compact();
            try {
                return channel.read(in) != 0; // -1: closed by the peer; more: unasked-for bytes
            } finally {
                in.flip();
                channel.configureBlocking(true);
            }
        } catch (IOException e) {
            return true;
        }
    }

    // ---- writing ---------------------------------------------------------------------

    /** Writes all of the buffers; each write may wait at most send_timeout. */
    void write(ByteBuffer... buffers) throws IOException {
        try {
            long left = 0;
            for (ByteBuffer b : buffers) left += b.remaining();
            while (left > 0) {
                writeDeadline = nonZero(System.nanoTime() + sendTimeoutNanos);
                left -= tls == null ? channel.write(buffers) : tls.write(buffers);
                if ((long) WRITE_DEADLINE.getAndSet(this, 0L) == CLAIMED) throw new Timeout("write to " + remote);
            }
        } catch (Timeout e) {
            throw e;
        } catch (IOException e) {
            WRITE_DEADLINE.setVolatile(this, 0L);
            throw expired ? new Timeout("write to " + remote) : e;
        }
    }

    void write(byte[] bytes) throws IOException {
        write(ByteBuffer.wrap(bytes));
    }

    /**
     * Closes gracefully: FIN first (shutdownOutput), then read and discard what the peer
     * still sends for up to {@code linger}, then close. See {@link Config#LINGERING_TIME}.
     */
    void lingeringClose(Duration linger) {
        try {
            if (channel.isOpen() && !expired) {
                if (tls != null) closeNotify();
                channel.shutdownOutput();
                readDeadline(linger);
                ByteBuffer discard = ByteBuffer.allocate(1024);
                for (int total = 0; total < 64 * 1024 && channelRead(discard.clear(), true) >= 0; ) total += discard.position();
            }
        } catch (IOException ignored) {
            // the peer reset or the linger time ran out: close anyway
        } finally {
            close();
        }
    }

    /** A half-close: no more bytes from us (TLS: close_notify first), the peer may still send. */
    void shutdownOutput() throws IOException {
        if (tls != null) closeNotify();
        channel.shutdownOutput();
    }

    /** TLS's close_notify before the FIN, within send_timeout as any write. */
    private void closeNotify() throws IOException {
        writeDeadline = nonZero(System.nanoTime() + sendTimeoutNanos);
        try {
            tls.closeNotify();
        } finally {
            WRITE_DEADLINE.setVolatile(this, 0L);
        }
    }

    /** Closes with RST (SO_LINGER 0), so the peer can tell the stream was cut short. */
    void reset() {
        try {
            if (channel.isOpen()) channel.setOption(java.net.StandardSocketOptions.SO_LINGER, 0);
        } catch (IOException ignored) {
            // closing anyway
        }
        close();
    }

    void closeQuietly() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing: nothing left to do
        }
    }

    @Override
    public void close() {
        Watchdog.forget(this);
        closeQuietly();
    }
}
