package com.quorumlm;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A connection to license sources: a cluster's servers, license files, or a search path of
 * both. Make one per program; open a {@link LicenseSession} on it to check features out.
 * Thread-safe. Closing it closes every session still open on it; closing it twice does
 * nothing.
 *
 * <pre>{@code
 * try (LicenseClient client = LicenseClient.fromEnv("SIGASI_LICENSE");
 *      LicenseSession session = client.openSession(Duration.ofSeconds(30));
 *      Seat seat = session.checkout("vhdl-editor", CheckoutOptions.defaults())) {
 *     work();
 * }
 * }</pre>
 */
public final class LicenseClient implements AutoCloseable {
    private final Handle handle;
    private final Set<LicenseSession> sessions = ConcurrentHashMap.newKeySet();

    private LicenseClient(Pointer pointer) {
        this.handle = new Handle(pointer, "LicenseClient");
    }

    /** The library's version ("0.1.0"). */
    public static String libraryVersion() {
        return QuorumLM.get().qlm_version();
    }

    /** From the environment: {@code QLM_LICENSE}, then {@code QLM_SERVERS}. */
    public static LicenseClient fromEnv() throws LicenseException {
        return fromEnv(null);
    }

    /**
     * From the environment: the vendor's own variable {@code vendorVar} (when not null), then
     * {@code QLM_LICENSE}, then {@code QLM_SERVERS}; {@link NoServersException} when none is
     * set.
     */
    public static LicenseClient fromEnv(String vendorVar) throws LicenseException {
        PointerByReference out = new PointerByReference();
        Errors.check(QuorumLM.get().qlm_client_new(null, vendorVar, out));
        return new LicenseClient(out.getValue());
    }

    /**
     * From an explicit search path, written as {@code QLM_LICENSE} is: license files,
     * directories and server lists, tried in order.
     */
    public static LicenseClient fromSearchPath(String searchPath) throws LicenseException {
        if (searchPath == null) {
            throw new InvalidArgumentException("searchPath is null (use fromEnv for the environment)");
        }
        PointerByReference out = new PointerByReference();
        Errors.check(QuorumLM.get().qlm_client_new(searchPath, null, out));
        return new LicenseClient(out.getValue());
    }

    /** From one cluster's servers: {@code "a:7400,b:7400,c:7400"}. */
    public static LicenseClient fromServers(String servers) throws LicenseException {
        if (servers == null) {
            throw new InvalidArgumentException("servers is null");
        }
        PointerByReference out = new PointerByReference();
        Errors.check(QuorumLM.get().qlm_client_new_servers(servers, out));
        return new LicenseClient(out.getValue());
    }

    /**
     * Trusts a vendor's public key for node-locked license files: {@code
     * "ed25519-public:..."} or the text of a key file.
     */
    public void trustVendorKey(String publicKey) throws LicenseException {
        if (publicKey == null) {
            throw new InvalidArgumentException("publicKey is null");
        }
        Errors.check(QuorumLM.get().qlm_client_trust_vendor_key(handle.get(), publicKey));
    }

    /** A session with the server's default TTL. */
    public LicenseSession openSession() throws LicenseException {
        return openSession(Duration.ZERO);
    }

    /**
     * A session whose seats the cluster frees when it has heard nothing from this program for
     * {@code ttl} (the library heartbeats from its own thread meanwhile); zero for the
     * server's default.
     */
    public LicenseSession openSession(Duration ttl) throws LicenseException {
        long ms = ttl == null ? 0 : ttl.toMillis();
        if (ms < 0 || ms > 0xFFFF_FFFFL) {
            throw new InvalidArgumentException("ttl must be 0 to 4294967295 ms, not " + ttl);
        }
        PointerByReference out = new PointerByReference();
        Errors.check(QuorumLM.get().qlm_session_open(handle.get(), (int) ms, out));
        LicenseSession session = LicenseSession.opened(this, out.getValue());
        sessions.add(session);
        return session;
    }

    void forget(LicenseSession session) {
        sessions.remove(session);
    }

    /** Closes every session still open on this client, then frees the client. */
    @Override
    public void close() {
        Pointer pointer = handle.take();
        if (pointer == null) {
            return;
        }
        List<LicenseSession> open = new ArrayList<>(sessions);
        for (LicenseSession session : open) {
            try {
                session.close();
            } catch (LicenseException e) {
                // The cluster frees the session's seats after its TTL anyway.
            }
        }
        QuorumLM.get().qlm_client_free(pointer);
    }
}
