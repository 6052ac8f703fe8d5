import java.nio.ByteBuffer;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.zip.Deflater;

/**
 * The deflaters, within the memory budget: made on demand while the budget's share
 * allows (half of it, as for large buffers, so compression can't starve the transfers),
 * kept for reuse, each with its direct output buffer. Closed at shutdown: the idle ones
 * are ended at once, the ones in use as they come back.
 */
final class Deflaters {
    /**
     * What one deflater is counted as in the budget: zlib's state for windowBits 15 and
     * memLevel 8 (a 64 KiB window, 128 KiB of hash chains, a 64 KiB pending buffer, the
     * stream: about 262 KiB) and the 32 KiB output buffer that comes with it.
     */
    static final int COST = 320 * 1024;
    /** Where compressed bytes collect before they go out as one piece (a chunk). */
    static final int OUTPUT = 32 * 1024;

    /** A deflater and the direct buffer its output collects in, counted as one {@link #COST}. */
    record Unit(Deflater deflater, ByteBuffer output) {}

    private final BufferPool budget;
    private final ConcurrentLinkedQueue<Unit> idle = new ConcurrentLinkedQueue<>();
    private final AtomicInteger made = new AtomicInteger();
    private volatile boolean closed;

    Deflaters(BufferPool budget) {
        this.budget = budget;
    }

    /** A deflater at this level, ready for a new stream, or null if the budget allows none now. */
    Unit take(int level) {
        Unit u = idle.poll();
        if (u != null) {
            u.deflater.setLevel(level); // takes effect with the first deflate of the stream
            return u;
        }
        if (closed) return null;
        if ((long) made.incrementAndGet() * COST > budget.budget() / 2 || !budget.reserve(COST)) {
            made.decrementAndGet();
            return null;
        }
        try {
            return new Unit(new Deflater(level, true), ByteBuffer.allocateDirect(OUTPUT));
        } catch (OutOfMemoryError e) { // the JVM's direct memory is below our budget: do without
            made.decrementAndGet();
            budget.release(COST);
            return null;
        }
    }

    /** Gives a unit back: reset for the next stream, or ended if the pool is closed. */
    void give(Unit u) {
        if (closed) {
            end(u);
            return;
        }
        u.deflater.reset();
        idle.offer(u);
        if (closed) drain(); // closed meanwhile: don't leave it behind
    }

    /** Deflaters that exist (idle or in use): each counted in the budget. */
    int made() {
        return made.get();
    }

    /** Deflaters idle in the pool. */
    int idle() {
        return idle.size();
    }

    /** At shutdown: ends the idle deflaters now, and the others as they are given back. */
    void close() {
        closed = true;
        drain();
    }

    private void drain() {
        for (Unit u; (u = idle.poll()) != null; ) end(u);
    }

    private void end(Unit u) {
        u.deflater.end();
        made.decrementAndGet();
        budget.release(COST);
    }
}
