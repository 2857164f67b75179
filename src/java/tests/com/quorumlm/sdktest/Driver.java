package com.quorumlm.sdktest;

import com.quorumlm.CheckoutOptions;
import com.quorumlm.DeniedException;
import com.quorumlm.Holder;
import com.quorumlm.LicenseClient;
import com.quorumlm.LicenseException;
import com.quorumlm.LicenseSession;
import com.quorumlm.Seat;
import com.quorumlm.SessionStatus;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * The Java side of cluster-tests/tests/sdk_java.rs: a program that uses the binding as an
 * application would, driven one command per stdin line, answering one line per command
 * (asynchronous news starts with "event"). Commands:
 *
 * <pre>
 * servers LIST                 LicenseClient.fromServers
 * env VAR                      LicenseClient.fromEnv(VAR)
 * open TTL_MS                  openSession, with a lost listener printing "event lost ..."
 * checkout NAME FEATURE [count=N] [wait_ms=N] [version=V]
 * checkin NAME | keep NAME | status | lost | pid | close | quit
 * </pre>
 *
 * Answers: "ok", "granted NAME ...", "denied REASON holders=N H1 | H2", "error CLASS STATUS
 * message", "status ...", "lost true|false", "pid N".
 */
public final class Driver {
    private LicenseClient client;
    private LicenseSession session;
    private final Map<String, Seat> seats = new HashMap<>();

    public static void main(String[] args) throws Exception {
        Driver driver = new Driver();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        say("ready");
        String line;
        while ((line = in.readLine()) != null) {
            String[] words = line.trim().split("\\s+");
            if (words[0].equals("quit")) {
                say("bye");
                return;
            }
            String answer;
            try {
                answer = driver.run(words);
            } catch (DeniedException e) {
                String holders = e.holders().stream().map(Holder::text).collect(Collectors.joining(" | "));
                answer = "denied " + e.reason() + " holders=" + e.holders().size() + " " + holders;
            } catch (LicenseException e) {
                answer = "error " + e.getClass().getSimpleName() + " " + e.status() + " " + e.getMessage();
            } catch (RuntimeException e) {
                answer = "error " + e.getClass().getSimpleName() + " - " + e.getMessage();
            }
            say(answer.replace('\n', ' '));
        }
    }

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private String run(String[] w) throws LicenseException {
        switch (w[0]) {
            case "servers" -> client = LicenseClient.fromServers(w[1]);
            case "env" -> client = LicenseClient.fromEnv(w[1]);
            case "open" -> {
                session = client.openSession(Duration.ofMillis(Long.parseLong(w[1])));
                session.onLost((reason, message) -> say("event lost " + reason + " " + message));
            }
            case "checkout" -> {
                Seat seat = session.checkout(w[2], options(w));
                seats.put(w[1], seat);
                return "granted " + w[1] + " handle=" + seat.handle() + " feature=" + seat.feature()
                        + " version=" + seat.version() + " count=" + seat.count()
                        + " node_locked=" + seat.isNodeLocked() + " source=" + seat.source();
            }
            case "checkin" -> {
                Seat seat = seats.remove(w[1]);
                seat.close();
                seat.close(); // a second close does nothing
            }
            case "keep" -> seats.remove(w[1]).keep();
            case "status" -> {
                SessionStatus s = session.status();
                return "status session=" + s.sessionId() + " server=" + s.server() + " leader=" + s.leader()
                        + " heartbeats=" + s.heartbeats() + " lost=" + s.lost();
            }
            case "lost" -> {
                return "lost " + session.isLost();
            }
            case "pid" -> {
                return "pid " + ProcessHandle.current().pid();
            }
            case "close" -> {
                session.close();
                session.close();
                client.close();
                client.close();
            }
            default -> {
                return "error Unknown - " + w[0];
            }
        }
        return "ok";
    }

    private static CheckoutOptions options(String[] w) {
        CheckoutOptions options = CheckoutOptions.defaults();
        for (int i = 3; i < w.length; i++) {
            String[] kv = w[i].split("=", 2);
            options = switch (kv[0]) {
                case "count" -> options.withCount(Integer.parseInt(kv[1]));
                case "wait_ms" -> options.waitUpTo(Duration.ofMillis(Long.parseLong(kv[1])));
                case "version" -> options.withVersion(kv[1]);
                default -> throw new IllegalArgumentException("unknown option " + w[i]);
            };
        }
        return options;
    }
}
