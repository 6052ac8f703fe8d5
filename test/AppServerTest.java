import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * The tutorial's Flask app behind the proxy, on the two servers people run it with, each of
 * which closes idle keep-alive connections on its own schedule: gunicorn (gthread workers:
 * keepalive 2 s by default) and Flask's own (Werkzeug). A request every 1.9 to 2.1 s for a
 * minute, GETs and POSTs mixed, meets the server's close again and again; none may fail
 * (issue 10). Both servers run at once, so the test takes one minute.
 */
@Timeout(value = 150, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class AppServerTest {
    private static final int REQUESTS = 30; // ~ a minute at ~2 s each
    private static final Pattern GUNICORN_PORT = Pattern.compile("Listening at: http://127\\.0\\.0\\.1:(\\d+)");

    static boolean gunicorn() {
        return java.nio.file.Files.isExecutable(java.nio.file.Path.of("/usr/bin/gunicorn"));
    }

    @Test
    @EnabledIf("gunicorn")
    void aRequestEveryTwoSecondsNeverFailsOnGunicornOrFlasksOwnServer() throws Exception {
        try (Child flask = Child.start(List.of(TutorialTest.PYTHON, "test/tutorial/app.py"));
             Child gunicorn = Child.start(new ProcessBuilder("/usr/bin/gunicorn", "--worker-class", "gthread",
                     "--threads", "4", "--bind", "127.0.0.1:0", "app:app").directory(new java.io.File("test/tutorial")))) {
            int flaskPort = Integer.parseInt(flask.awaitStdout(Pattern.compile("^port (\\d+)$"), TutorialTest.STARTUP).group(1));
            int gunicornPort = Integer.parseInt(gunicorn.awaitStderr(GUNICORN_PORT, TutorialTest.STARTUP).group(1));
            try (var viaFlask = TestSupport.proxy(flaskPort); var viaGunicorn = TestSupport.proxy(gunicornPort)) {
                List<String> failures = new java.util.concurrent.CopyOnWriteArrayList<>();
                AtomicInteger ok = new AtomicInteger();
                List<Thread> clients = new ArrayList<>();
                for (var proxy : List.of(viaFlask, viaGunicorn)) {
                    String name = proxy == viaFlask ? "flask" : "gunicorn";
                    clients.add(Thread.ofVirtual().start(() -> everyTwoSeconds(TestSupport.port(proxy), name, ok, failures)));
                }
                for (Thread t : clients) t.join(Duration.ofSeconds(120));
                assertEquals(List.of(), failures, "requests that failed");
                assertEquals(2 * REQUESTS, ok.get());
            }
        }
    }

    /** One keep-alive client, as a browser is: a request every 1.9-2.1 s, GET and POST in turn. */
    private static void everyTwoSeconds(int port, String server, AtomicInteger ok, List<String> failures) {
        TestSupport.Client client = null;
        try {
            for (int i = 0; i < REQUESTS; i++) {
                Thread.sleep(1900 + ThreadLocalRandom.current().nextInt(201));
                boolean post = i % 2 == 1;
                String request = post
                        ? "POST /form HTTP/1.1\r\nHost: app\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                          + "Content-Length: 11\r\n\r\nname=value1"
                        : "GET / HTTP/1.1\r\nHost: app\r\n\r\n";
                if (client == null) client = new TestSupport.Client(port);
                TestSupport.Response resp;
                try {
                    resp = client.send(request).read();
                } catch (java.io.IOException e) {
                    // The proxy may close an idle client connection (keepalive_timeout is 65 s
                    // here, so it should not); a browser would send again. Counted as a failure.
                    failures.add(server + " request " + i + ": " + e);
                    client.close();
                    client = null;
                    continue;
                }
                if (resp.status() != 200) failures.add(server + " request " + i + " (" + (post ? "POST" : "GET") + "): " + resp.status());
                else ok.incrementAndGet();
                String expected = post ? "read 11 bytes" : "Hello";
                if (resp.status() == 200 && !resp.bodyText().equals(expected)) failures.add(server + ": body " + resp.bodyText());
                if ("close".equals(resp.header("Connection"))) {
                    client.close();
                    client = null;
                }
            }
        } catch (Exception e) {
            failures.add(server + ": " + e);
        } finally {
            try {
                if (client != null) client.close();
            } catch (java.io.IOException ignored) {
                // done
            }
        }
    }
}
