import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The transfer buffers, and the one memory budget they all come out of.
 *
 * <p>Bodies stream through direct buffers (the kernel copies straight into them, no copy
 * through the heap). Direct memory is outside the Java heap, limited by the JVM
 * (-XX:MaxDirectMemorySize, by default as large as the heap), and running out of it is an
 * {@code OutOfMemoryError} in whichever connection asks next. So every transfer buffer
 * comes from here, and all of them together never exceed {@code buffer_memory}: by default
 * an eighth of the heap the JVM may use (4 MiB to 256 MiB), which in a 128 MB container is
 * 8 MiB.
 *
 * <p>A body starts with a {@link #SMALL} buffer; one known to be large, or one that keeps
 * filling its buffer, gets a {@link #LARGE} one, which halves the system calls per
 * megabyte again. Large buffers may take at most half the budget, so a few big downloads
 * can't leave the rest of the traffic without buffers. When the budget is spent,
 * {@link #take} returns null and the transfer goes on through its connection's own small
 * read buffer: slower, never failing. Buffers are kept for reuse once made (within the
 * budget, so that is bounded too): no allocation, and no wait for the GC to free direct
 * memory, on the path of a request.
 *
 * <p>The budget holds because buffers are lent only while data flows: {@link Relay} gives
 * its buffer back before it waits on a peer that sends slowly, so a thousand slow clients
 * hold no buffers at all while they dawdle (see Relay.Source).
 *
 * <p>gzip's deflaters hold native memory of the same kind and are counted in the same
 * budget ({@link #deflaters}, {@link Deflaters}): made only when a response is
 * compressed, so with gzip off they cost nothing.
 */
class BufferPool {
    static final int SMALL = 64 * 1024;
    static final int LARGE = 1024 * 1024;

    private final long budget;
    private final AtomicLong made = new AtomicLong();      // bytes of buffers that exist
    private final AtomicLong madeLarge = new AtomicLong(); // of which large
    private final ConcurrentLinkedQueue<ByteBuffer> small = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<ByteBuffer> large = new ConcurrentLinkedQueue<>();

    /** The deflaters for gzip, counted in this budget ({@link #reserve}). */
    final Deflaters deflaters = new Deflaters(this);

    BufferPool(long budget) {
        this.budget = budget;
    }

    /** buffer_memory = auto: an eighth of the maximum heap, from 4 MiB to 256 MiB. */
    static long defaultBudget() {
        return Math.clamp(Runtime.getRuntime().maxMemory() / 8, 4L << 20, 256L << 20);
    }

    long budget() {
        return budget;
    }

    /** Bytes of buffers made so far (lent out or waiting here): never more than the budget. */
    long made() {
        return made.get();
    }

    /**
     * A buffer for a body of which {@code expected} bytes are still to come (MAX_VALUE:
     * unknown), or null if the budget is spent.
     */
    ByteBuffer take(long expected) {
        if (expected >= LARGE && expected != Long.MAX_VALUE) {
            ByteBuffer b = takeLarge();
            if (b != null) return b;
        }
        ByteBuffer b = small.poll();
        return b != null ? b : make(SMALL);
    }

    /** A large buffer, or null if none can be had within the budget. */
    ByteBuffer takeLarge() {
        ByteBuffer b = large.poll();
        if (b != null) return b;
        if (madeLarge.addAndGet(LARGE) > budget / 2) {
            madeLarge.addAndGet(-LARGE);
            return null;
        }
        b = make(LARGE);
        if (b == null) madeLarge.addAndGet(-LARGE);
        return b;
    }

    /** Gives a buffer back (null is allowed: nothing was taken). */
    void give(ByteBuffer b) {
        if (b == null) return;
        (b.capacity() == LARGE ? large : small).offer(b.clear());
    }

    /** Counts {@code bytes} of something other than a buffer (a deflater) in the budget; false if it has no room. */
    boolean reserve(long bytes) {
        if (made.addAndGet(bytes) > budget) {
            made.addAndGet(-bytes);
            return false;
        }
        return true;
    }

    /** Gives back what {@link #reserve} counted. */
    void release(long bytes) {
        made.addAndGet(-bytes);
    }

    /** The allocation itself (tests make it fail). */
    ByteBuffer allocate(int size) {
        return ByteBuffer.allocateDirect(size);
    }

    /** Makes a buffer if the budget allows it; counted first, so concurrent takers can't overshoot. */
    private ByteBuffer make(int size) {
        if (made.addAndGet(size) > budget) {
            made.addAndGet(-size);
            return null;
        }
        try {
            return allocate(size);
        } catch (OutOfMemoryError e) {
            // The JVM's own direct-memory limit is below our budget (-XX:MaxDirectMemorySize
            // set small): do without, and don't count what was never made.
            made.addAndGet(-size);
            return null;
        }
    }
}
