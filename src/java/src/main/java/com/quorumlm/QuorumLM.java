package com.quorumlm;

import com.sun.jna.Callback;
import com.sun.jna.IntegerType;
import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.PointerByReference;

/**
 * The C ABI of {@code libquorumlm} (header {@code src/capi/include/quorumlm.h}), one Java
 * method per C function. Applications use {@link LicenseClient}, {@link LicenseSession} and
 * {@link Seat}, which own the handles; this interface is public for programs that need a call
 * the classes do not wrap.
 *
 * <p>The library is found as JNA finds any: {@code -Djna.library.path=<dir of
 * libquorumlm.so>}, then the system's library path. {@code -Dquorumlm.library=<file>} names
 * the file itself. Strings cross the boundary as UTF-8 whatever the platform's default.
 */
public interface QuorumLM extends Library {
    /** The loaded library (loaded on first use). */
    static QuorumLM get() {
        return Loader.LIBRARY;
    }

    /** C {@code size_t}. */
    final class SizeT extends IntegerType {
        private static final long serialVersionUID = 1L;

        public SizeT() {
            this(0);
        }

        public SizeT(long value) {
            super(Native.SIZE_T_SIZE, value, true);
        }
    }

    /** C {@code qlm_session_status}. */
    @Structure.FieldOrder({"session_id", "server", "leader", "heartbeats", "lost"})
    class SessionStatusStruct extends Structure {
        public byte[] session_id = new byte[64];
        public byte[] server = new byte[128];
        public byte[] leader = new byte[128];
        public long heartbeats;
        public int lost;
    }

    /** C {@code qlm_checkout_info}. */
    @Structure.FieldOrder({"handle", "feature", "version", "count", "node_locked", "source"})
    class CheckoutInfoStruct extends Structure {
        public long handle;
        public byte[] feature = new byte[65];
        public byte[] version = new byte[33];
        public int count;
        public int node_locked;
        public byte[] source = new byte[256];
    }

    /**
     * C {@code qlm_lost_callback}. The message is taken as a pointer so that it is read as
     * UTF-8 whatever JNA's default encoding.
     */
    interface LostCallback extends Callback {
        void invoke(Pointer userData, int reason, Pointer message);
    }

    String qlm_version();

    String qlm_last_error();

    String qlm_last_denial_reason();

    SizeT qlm_last_denial_holder_count();

    String qlm_last_denial_holder(SizeT index);

    int qlm_client_new(String searchPath, String vendorVar, PointerByReference out);

    int qlm_client_new_servers(String servers, PointerByReference out);

    int qlm_client_trust_vendor_key(Pointer client, String publicKey);

    int qlm_client_free(Pointer client);

    /** {@code ttlMs} is a C {@code uint32_t}: values above {@code Integer.MAX_VALUE} wrap. */
    int qlm_session_open(Pointer client, int ttlMs, PointerByReference out);

    int qlm_session_on_lost(Pointer session, LostCallback callback, Pointer userData);

    int qlm_session_is_lost(Pointer session, IntByReference lostOut);

    int qlm_session_status(Pointer session, SessionStatusStruct out);

    int qlm_session_close(Pointer session);

    /** {@code count} is a C {@code uint32_t}. */
    int qlm_checkout(
            Pointer session,
            String feature,
            String version,
            int count,
            long waitMs,
            long borrowUntilUnixS,
            PointerByReference out);

    int qlm_checkout_info(Pointer checkout, CheckoutInfoStruct out);

    int qlm_checkin(Pointer checkout);

    int qlm_checkout_free(Pointer checkout);
}
