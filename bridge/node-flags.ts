/**
 * Node/V8 flags every bridge process runs with: the container image sets the same through NODE_OPTIONS
 * (infra/Dockerfile, checked by a test), `jetway dev` and the bench pass them to the bridge they start.
 *
 * Without a heap limit V8 sizes the heap from the machine's memory (gigabytes on a big host) and, under
 * full load, lets it grow 60–90 MB past the live set before collecting; with a limit near what the bridge
 * needs it collects sooner and the RSS stays flat under any backlog. Messages in flight live in the heap
 * (up to max_ack_pending × message size per route), so raise it for many routes with large payloads, and
 * keep it under the container's memory limit (infra/k8s: 512Mi).
 */
export const BRIDGE_NODE_FLAGS: readonly string[] = ["--max-old-space-size=384"];
