import java.io.IOException;
import java.nio.channels.CancelledKeyException;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.PriorityQueue;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Idle keep-alive client connections, waiting for their next request without a thread.
 *
 * <p>Why: a virtual thread parked in a read keeps its stack (about 2 KiB once compiled,
 * more before) for as long as it waits, and a keep-alive connection mostly waits: 10,000
 * idle connections would hold 20 MB of stacks. So when a connection has answered its
 * request and none is pipelined behind it, its thread ends, and the connection's channel
 * waits here, on one shared {@link Selector}. When bytes arrive, the connection gets a new
 * virtual thread and {@link ClientConnection#serve} carries on where the loop left off. An
 * idle connection costs its socket, a few small objects and a selection key; no buffer.
 *
 * <p>One platform thread runs the selector. It also enforces keepalive_timeout: an idle
 * connection whose time is up is closed (a FIN: nothing is unread), at most one
 * {@link Watchdog#TICK_MILLIS} late.
 */
final class IdleConnections implements AutoCloseable {
    private final Duration timeout;
    private final Log log;
    private final Selector selector;
    private final Queue<ClientConnection> arriving = new ConcurrentLinkedQueue<>();
    private final Thread thread;
    private volatile boolean closing;
    private long nextScan = Long.MAX_VALUE; // nanoTime of the earliest deadline, at most one tick early
    private final AtomicInteger toReclaim = new AtomicInteger(); // to close for room under max_connections
    private final LogTally reclaimed; // the log's line about it: at most one a minute

    IdleConnections(Duration keepaliveTimeout, Log log) throws IOException {
        this.timeout = keepaliveTimeout;
        this.log = log;
        this.reclaimed = new LogTally(log, Duration.ofMinutes(1), n -> "max_connections reached: closed " + n
                + " keep-alive connection" + (n == 1 ? "" : "s") + " idle longest, to make room for new ones");
        this.selector = Selector.open();
        this.thread = Thread.ofPlatform().daemon().name("idle connections").start(this::run);
    }

    /** A connection parked here, and when it is to be closed if nothing comes. */
    private record Idle(ClientConnection connection, long deadline) {}

    /**
     * Called on the connection's thread after a response: true if the connection now waits
     * here (the caller's thread should end), false if its next request is already arriving
     * (serve it at once: the check costs one non-blocking read, which a blocking read would
     * have made too).
     */
    boolean await(ClientConnection c, Wire wire) throws IOException {
        if (closing) { // shutting down: no more waiting
            c.closeIdle();
            return true;
        }
        wire.channel.configureBlocking(false);
        boolean ready = true; // also if the read fails: the caller closes it, with blocking reads
        try {
            ready = wire.fillNow();
        } finally {
            if (ready) wire.channel.configureBlocking(true);
        }
        if (ready) return false; // bytes are here already
        wire.release(); // an idle connection holds no read buffer
        arriving.add(c);
        selector.wakeup();
        if (closing && arriving.remove(c)) c.closeIdle(); // the selector's thread has stopped meanwhile
        return true;
    }

    /**
     * Called by the acceptor when max_connections are all taken: the {@code n} connections
     * idle longest are closed to make room, as nginx does when its worker_connections run
     * out ("reusing connections"), so that a crowd of idle keep-alive connections can't lock
     * new clients out for keepalive_timeout. Returns false if none waits here.
     */
    boolean reclaim(int n) {
        try {
            if (closing || size() == 0) return false;
        } catch (ClosedSelectorException e) {
            return false; // stopping, or the selector failed: none waits here any more
        }
        toReclaim.accumulateAndGet(n, Math::max);
        selector.wakeup();
        return true;
    }

    private void run() {
        boolean reported = false;
        try {
            while (!closing) {
                try {
                    long now = System.nanoTime();
                    long wait = nextScan == Long.MAX_VALUE ? 0 : Math.max(1, (nextScan - now) / 1_000_000);
                    selector.select(wait);
                    wakeReady();
                    register();
                    int n = toReclaim.getAndSet(0);
                    if (n > 0) closeLongestIdle(n);
                    if (System.nanoTime() - nextScan >= 0) expire();
                } catch (RuntimeException | Error e) {
                    // Whatever it was (out of memory starting a thread, say), this thread must go
                    // on: every idle connection depends on it. Said once, with its stack.
                    if (e instanceof ClosedSelectorException) throw e;
                    if (!reported) log.unexpected("waiting on idle connections (going on)", e);
                    reported = true;
                }
            }
        } catch (IOException | ClosedSelectorException e) {
            // the selector failed: nothing can wait here any more; close all
        } finally {
            closing = true; // no connection may wait here from now on
            closeAll();
        }
    }

    /** Connections whose next request has begun: back to a virtual thread each. */
    private void wakeReady() {
        var ready = selector.selectedKeys();
        for (SelectionKey key : ready) {
            key.cancel(); // before the channel may be made blocking again
            ((Idle) key.attachment()).connection().resume();
        }
        ready.clear();
    }

    /** Connections that just fell idle: watch them, and note their deadline. */
    private void register() throws IOException {
        for (ClientConnection c; (c = arriving.poll()) != null; ) {
            Wire wire = c.wire();
            if (wire.channel.keyFor(selector) != null) selector.selectNow(); // its last key, cancelled, must go first
            long deadline = System.nanoTime() + timeout.toNanos();
            try {
                wire.channel.register(selector, SelectionKey.OP_READ, new Idle(c, deadline));
            } catch (IOException | RuntimeException e) {
                c.closeIdle(); // closed meanwhile
                continue;
            }
            if (nextScan == Long.MAX_VALUE || deadline - nextScan < 0) nextScan = deadline;
        }
        wakeReady(); // selectNow may have found some ready
    }

    /** Closes the connections idle for keepalive_timeout, and finds the next deadline. */
    private void expire() {
        long now = System.nanoTime();
        long earliest = Long.MAX_VALUE;
        for (SelectionKey key : selector.keys()) {
            if (!key.isValid()) continue;
            Idle idle = (Idle) key.attachment();
            if (now - idle.deadline() >= 0) {
                key.cancel();
                idle.connection().closeIdle();
            } else if (earliest == Long.MAX_VALUE || idle.deadline() - earliest < 0) {
                earliest = idle.deadline();
            }
        }
        // Scanning is O(idle connections): at most once a tick, however the deadlines fall.
        long tick = Watchdog.TICK_MILLIS * 1_000_000;
        nextScan = earliest == Long.MAX_VALUE ? Long.MAX_VALUE : Math.max(earliest, now + tick);
    }

    /** Closes the {@code n} connections idle longest (the earliest deadlines), at once: they owe nothing. */
    private void closeLongestIdle(int n) {
        Comparator<SelectionKey> byDeadline = Comparator.comparingLong(key -> ((Idle) key.attachment()).deadline());
        PriorityQueue<SelectionKey> longest = new PriorityQueue<>(n + 1, byDeadline.reversed());
        for (SelectionKey key : selector.keys()) {
            if (!key.isValid()) continue;
            longest.add(key);
            if (longest.size() > n) longest.poll(); // the latest deadline of those kept
        }
        for (SelectionKey key : longest) {
            key.cancel();
            ((Idle) key.attachment()).connection().closeIdleNow();
        }
        if (!longest.isEmpty()) reclaimed.add(longest.size());
    }

    /** How many connections wait here now (for tests and the status page). */
    int size() {
        return selector.keys().size() + arriving.size();
    }

    /** Stops watching: every idle connection is closed. */
    @Override
    public void close() {
        closing = true;
        selector.wakeup();
        try {
            thread.join(Duration.ofSeconds(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void closeAll() {
        List<ClientConnection> all = new ArrayList<>();
        try {
            for (SelectionKey key : selector.keys()) {
                if (key.isValid()) all.add(((Idle) key.attachment()).connection()); // cancelled: being served
            }
        } catch (ClosedSelectorException ignored) {
            // none left to find
        }
        for (ClientConnection c; (c = arriving.poll()) != null; ) all.add(c);
        try {
            selector.close();
        } catch (IOException ignored) {
            // closing anyway
        }
        all.forEach(ClientConnection::closeIdle);
    }
}
