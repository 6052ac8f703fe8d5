import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Enforces every timeout of the proxy.
 *
 * <p>Why this exists: a blocking {@code SocketChannel.read} or {@code write} ignores
 * SO_TIMEOUT and would wait forever for a silent peer. So each {@link Wire} publishes the
 * moment by which its current read or write must finish (a deadline, in
 * {@link System#nanoTime} terms), and this one thread looks at all of them every
 * {@link #TICK_MILLIS} and closes the channel of any wire that is overdue. Closing a
 * channel wakes the virtual thread blocked on it with an {@code AsynchronousCloseException},
 * which the wire reports as {@link Wire.Timeout}.
 *
 * <p>Arming a deadline costs one volatile write, so it can be done around every read and
 * write; a timeout fires at most one tick late.
 */
final class Watchdog {
    static final long TICK_MILLIS = 50;

    private static final Set<Wire> WATCHED = ConcurrentHashMap.newKeySet();

    static {
        Thread.ofPlatform().daemon().name("watchdog").start(Watchdog::run);
    }

    private Watchdog() {}

    static void watch(Wire wire) {
        WATCHED.add(wire);
    }

    static void forget(Wire wire) {
        WATCHED.remove(wire);
    }

    private static void run() {
        while (true) {
            try {
                Thread.sleep(TICK_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
            long now = System.nanoTime();
            for (Wire wire : WATCHED) {
                if (wire.isOverdue(now)) wire.expire();
            }
        }
    }
}
