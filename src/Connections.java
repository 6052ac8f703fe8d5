import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;

/**
 * The client connections being served: at most max_connections at once, and the graceful
 * stop that lets them finish (nginx's graceful shutdown, SIGQUIT there, SIGTERM here).
 *
 * <p>A stop goes in two steps. First {@link #drain}: from then on every response says
 * {@code Connection: close} and its connection ends after it, so the connections in flight
 * finish their exchange and go, while idle ones are closed by {@link IdleConnections}; the
 * proxy waits for that ({@link #awaitAll}). Then, if some are still open when
 * shutdown_timeout runs out (a slow download, a WebSocket), {@link #closeAll} closes them.
 *
 * <p>A connection over max_connections makes room by closing the connections idle longest
 * ({@link IdleConnections#reclaim}); where none is idle, it is turned away by {@link Refusals}.
 */
final class Connections {
    /**
     * What one client connection may hold of the heap at its largest, with the collector's
     * room around it: an upload stalled after its head (a thread waiting for the client, one
     * for the response, their buffers) holds 15-17 KiB, and a 64 MiB heap (a 128 MB
     * container) held 2,000 such uploads and served everyone else at full speed, 3,000 at a
     * tenth of it, 4,000 not at all (make bench's 128 MB options, 2026-12-02).
     */
    static final int LARGEST = 32 << 10;

    /**
     * max_connections = auto: as many connections as a heap of {@code maxHeap} bytes holds
     * at their largest, from 64 to 10,000: about 2,000 in a 128 MB container (2,006 with
     * the image's options, whose heap is 62 MiB without a survivor space). Idle keep-alive
     * connections count too, until a new one needs their room. HAProxy, too, derives its
     * maxconn from the memory it may use.
     */
    static int defaultMax(long maxHeap) {
        return Math.clamp(maxHeap / LARGEST, 64, 10_000);
    }

    /** The error log's warning for a max_connections more than such a heap holds, or null. */
    static String overHeap(int maxConnections, long maxHeap) {
        if (maxConnections <= defaultMax(maxHeap)) return null;
        return "max_connections (" + maxConnections + ") is more than the heap holds at "
                + LARGEST / 1024 + " KiB a connection (" + maxHeap / LARGEST + " in " + (maxHeap >> 20)
                + " MiB): a flood of slow uploads could exhaust it and stall every connection; give the JVM"
                + " more memory, or leave max_connections at auto";
    }

    /**
     * The error log's warning for a JVM that may not fit its container, or null: a heap of
     * less than 100 MiB (the JVM makes it half the memory it is given below about 250 MB)
     * with the C2 compiler on. Whatever the connections hold, the heap fills under load, and
     * C2 needs up to 37 MiB more while it compiles the request path: under the load of make
     * bench's 128 MB run, in a memory cgroup of 128 MiB, the plain {@code java -cp out Proxy
     * FILE} (shipped defaults) was killed by the kernel, where the image's options (C1
     * alone: {@code java.vm.info} then says "emulated-client") peaked at 116 MiB and served
     * all of it (2026-12-02).
     *
     * <p>{@code java.vm.info} tells only {@code -XX:TieredStopAtLevel=1} ("emulated-client")
     * and {@code -Xint} ("interpreted mode") from a JVM with C2: the rarely used levels 0, 2
     * and 3 (no compiler, or C1 with profiling) read "mixed mode" as C2 does, and are warned
     * about too, with the same advice, level 1. A JVM that is not HotSpot is taken as one
     * with C2.
     */
    static String smallJvm(long maxHeap, String vmInfo) {
        boolean c2 = vmInfo != null && !vmInfo.contains("emulated-client") && !vmInfo.contains("interpreted mode");
        if (maxHeap >= 100L << 20 || !c2) return null;
        return "the JVM has a heap of " + (maxHeap >> 20) + " MiB and the C2 compiler: in a container of about twice"
                + " that, the two can outgrow it under load and the kernel kills the proxy; give java the image's options"
                + " (C1 alone, -XX:TieredStopAtLevel=1, among them): java @out/image/small.options -cp out Proxy FILE"
                + " after make image, or make run, which takes them below 512 MB";
    }

    private final int max;
    private final Semaphore slots;
    private final Set<ClientConnection> open = ConcurrentHashMap.newKeySet();
    private volatile boolean draining;
    // nginx's stub_status counters (read by Status): connections accepted, and admitted
    // (within max_connections); requests; exchanges reading a head, and past it.
    final LongAdder accepts = new LongAdder();
    final LongAdder handled = new LongAdder();
    final LongAdder requests = new LongAdder();
    final LongAdder reading = new LongAdder();
    final LongAdder writing = new LongAdder();

    Connections(int maxConnections) {
        this.max = maxConnections;
        this.slots = new Semaphore(maxConnections);
    }

    /** A slot for a new connection, if one is free (else the caller refuses it). */
    boolean tryAdmit() {
        accepts.increment();
        boolean admitted = slots.tryAcquire();
        if (admitted) handled.increment();
        return admitted;
    }

    /** After {@link IdleConnections#reclaim}: a slot for the new connection, if one frees within {@code wait}. */
    boolean awaitAdmit(Duration wait) throws InterruptedException {
        boolean admitted = slots.tryAcquire(wait.toNanos(), TimeUnit.NANOSECONDS);
        if (admitted) handled.increment();
        return admitted;
    }

    /** An exchange begins: reading its request head. */
    void reading() {
        reading.increment();
    }

    /** Its head is in: a request, being served. */
    void writing() {
        reading.decrement();
        writing.increment();
        requests.increment();
    }

    /** The exchange ended, after its head was read or not. */
    void exchangeEnded(boolean headRead) {
        (headRead ? writing : reading).decrement();
    }

    /** Gives back a slot that {@link #tryAdmit} took, for a connection that never started. */
    void notStarted() {
        slots.release();
    }

    void started(ClientConnection c) {
        open.add(c);
    }

    /** The connection has closed: its slot is free again. */
    void ended(ClientConnection c) {
        open.remove(c);
        slots.release();
    }

    /** True once the stop has begun: a connection serves no further request. */
    boolean draining() {
        return draining;
    }

    /** Connections open now. */
    int count() {
        return open.size();
    }

    /** Begins the stop: from now on a connection serves no further request. */
    void drain() {
        draining = true;
    }

    /** Waits up to {@code timeout} for every connection to end; returns whether they all did. */
    boolean awaitAll(Duration timeout) throws InterruptedException {
        if (!slots.tryAcquire(max, timeout.toNanos(), TimeUnit.NANOSECONDS)) return false;
        slots.release(max);
        return true;
    }

    /** Closes every connection still open (after shutdown_timeout); returns how many. */
    int closeAll() {
        int n = 0;
        for (ClientConnection c : open) {
            c.abort();
            n++;
        }
        return n;
    }
}
