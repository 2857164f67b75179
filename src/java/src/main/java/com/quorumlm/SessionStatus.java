package com.quorumlm;

/**
 * A session as the library sees it: its id (empty until a cluster granted something), the
 * server in use, the leader it last heard of, heartbeats sent, and whether it is lost.
 */
public record SessionStatus(String sessionId, String server, String leader, long heartbeats, boolean lost) {}
