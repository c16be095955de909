/// <reference path="./.sst/platform/config.d.ts" />

/**
 * AWS deployment with SST v3: the four domain functions as Lambdas with function URLs, the audit log
 * in S3, the order function's housekeeping on EventBridge schedules, and the bridge as a long-running
 * container service (ECS on Fargate) in a VPC.
 *
 *   npx sst secret set JetwaySecret "$(openssl rand -hex 32)"   # and the other secrets below
 *   npx sst deploy --stage production
 *
 * This file is not type-checked by the repo (tsconfig excludes it: the `sst`, `aws` and `$…` globals
 * come from .sst/platform after `sst install`) and has not been deployed from here; infra/infra.test.ts
 * only checks that it parses and names handlers that exist. What it assumes:
 * - NATS runs outside this app (a self-hosted cluster per infra/k8s, or a managed service); the bridge
 *   reaches it through the NatsUrl / NatsUser / NatsPassword secrets (the bridge's NATS_* overrides).
 * - PostgreSQL runs outside this app too (DatabaseUrl secret). Lambdas do not migrate on start: run
 *   the migrations (functions/db) from CI before `sst deploy`.
 * - The bridge's public address is a fixed domain (BridgeDomain below): the order function needs the
 *   publish URL, and the bridge needs the functions' URLs, so one side must be known up front.
 */
const FUNCTIONS = ["order", "payment", "inventory", "audit"] as const;

export default $config({
  app(input) {
    return {
      name: "jetway",
      home: "aws",
      removal: input?.stage === "production" ? "retain" : "remove",
      protect: input?.stage === "production",
    };
  },
  async run() {
    const bridgeDomain = process.env.JETWAY_BRIDGE_DOMAIN ?? `bridge.${$app.stage}.jetway.example.com`;

    // Secrets: `sst secret set <Name> <value>`; each becomes an environment variable below.
    const jetwaySecret = new sst.Secret("JetwaySecret"); // JETWAY_SECRET: HMAC of every delivery
    const databaseUrl = new sst.Secret("DatabaseUrl"); // DATABASE_URL
    const publishSecret = new sst.Secret("PublishSecret"); // JETWAY_PUBLISH_SECRET: signs every ingress publish
    const gatewayUrl = new sst.Secret("GatewayUrl"); // GATEWAY_URL: the payment provider
    const natsUrl = new sst.Secret("NatsUrl"); // NATS_URL, comma-separated seed servers
    const natsUser = new sst.Secret("NatsUser");
    const natsPassword = new sst.Secret("NatsPassword");
    // JETWAY_ADMIN_TOKEN: guards the order function's housekeeping endpoints, public on its function URL.
    const adminToken = new sst.Secret("AdminToken");

    // Immutable, replayable audit log: versioned so an overwrite never loses the first write.
    const auditLog = new sst.aws.Bucket("AuditLog", { versioning: true });
    // The audit store signs S3 requests itself with a static key pair (no session-token support), so
    // it gets a dedicated IAM user limited to this bucket rather than the Lambda role's temporary keys.
    const auditWriter = new aws.iam.User("AuditWriter");
    new aws.iam.UserPolicy("AuditWriterPolicy", {
      user: auditWriter.name,
      policy: $jsonStringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: ["s3:GetObject", "s3:PutObject"],
            Resource: $interpolate`${auditLog.arn}/*`,
          },
          { Effect: "Allow", Action: ["s3:ListBucket"], Resource: auditLog.arn },
        ],
      }),
    });
    const auditKey = new aws.iam.AccessKey("AuditWriterKey", { user: auditWriter.name });
    const region = aws.getRegionOutput().name;

    const common = {
      JETWAY_SECRET: jetwaySecret.value,
      DATABASE_URL: databaseUrl.value,
    };
    const extra: Record<(typeof FUNCTIONS)[number], Record<string, $util.Input<string>>> = {
      order: {
        JETWAY_PUBLISH_URL: `https://${bridgeDomain}`,
        JETWAY_PUBLISH_SECRET: publishSecret.value,
        JETWAY_ADMIN_TOKEN: adminToken.value,
      },
      payment: { GATEWAY_URL: gatewayUrl.value },
      inventory: {},
      audit: {
        AUDIT_S3_BUCKET: auditLog.name,
        AUDIT_S3_ENDPOINT: $interpolate`https://s3.${region}.amazonaws.com`,
        AUDIT_S3_REGION: region,
        AUDIT_S3_ACCESS_KEY_ID: auditKey.id,
        AUDIT_S3_SECRET_ACCESS_KEY: auditKey.secret,
      },
    };

    // One Lambda per function, from functions/<name>/lambda.ts (`export const handler`). The function
    // URL is public: deliveries are authenticated by the x-jetway-signature HMAC, and the order
    // function's public API (POST /orders, GET /orders/:id) is meant to be reachable.
    const fns = Object.fromEntries(
      FUNCTIONS.map((name) => [
        name,
        new sst.aws.Function(`${name[0]?.toUpperCase()}${name.slice(1)}Function`, {
          handler: `functions/${name}/lambda.handler`,
          runtime: "nodejs22.x",
          architecture: "arm64",
          memory: "512 MB",
          // Above the bridge route timeout (10s) so the bridge, not Lambda, decides about slow calls.
          timeout: "15 seconds",
          url: true,
          environment: { ...common, ...extra[name] },
          link: name === "audit" ? [auditLog] : [],
        }),
      ]),
    ) as Record<(typeof FUNCTIONS)[number], sst.aws.Function>;

    // The order function's housekeeping (functions/order/housekeeping.ts), as infra/k8s's CronJobs and the
    // Workers cron triggers run it: EventBridge invokes the order Lambda with the task as its event. Set
    // JETWAY_PRUNE_OLDER_THAN_S on the function to keep records longer than the 7-day default.
    new sst.aws.Cron("OrderOutboxFlush", {
      schedule: "rate(5 minutes)",
      function: fns.order.arn,
      event: { jetway_housekeeping: "outbox-flush" },
    });
    new sst.aws.Cron("OrderProcessedPrune", {
      schedule: "cron(17 3 * * ? *)",
      function: fns.order.arn,
      event: { jetway_housekeeping: "processed-prune" },
    });

    // The bridge config, as in infra/bridge.example.yaml, with the Lambda URLs filled in. JSON is YAML.
    const events = (url: $util.Output<string>) => url.apply((u) => new URL("events", u).toString());
    const route = (name: string, stream: string, url: $util.Output<string>, more: object = {}) =>
      events(url).apply((u) => ({ name, stream, url: u, secret: "${JETWAY_SECRET}", ...more }));
    const streams = ["ORDERS", "PAYMENTS", "INVENTORY"].map((name) => ({
      name,
      subjects: [`${name.toLowerCase()}.>`],
      replicas: 3,
      duplicate_window: "2m",
      max_age: "720h",
    }));
    const bridgeConfig = $resolve([
      route("payment", "ORDERS", fns.payment.url, { filter_subject: "orders.created.v1" }),
      route("inventory", "ORDERS", fns.inventory.url, { filter_subject: "orders.created.v1" }),
      route("inventory-release", "PAYMENTS", fns.inventory.url, { filter_subject: "payments.failed.v1" }),
      // A refund must not be dropped: retried longer than the default five attempts.
      route("payment-refunds", "INVENTORY", fns.payment.url, {
        filter_subject: "inventory.rejected.v1",
        max_deliver: 20,
      }),
      route("order-status-payments", "PAYMENTS", fns.order.url),
      route("order-status-inventory", "INVENTORY", fns.order.url),
      route("audit-orders", "ORDERS", fns.audit.url, { concurrency: 8 }),
      route("audit-payments", "PAYMENTS", fns.audit.url, { concurrency: 8 }),
      route("audit-inventory", "INVENTORY", fns.audit.url, { concurrency: 8 }),
    ]).apply((routes) =>
      JSON.stringify({
        http: { port: 8080, host: "0.0.0.0", publish_secret: "${JETWAY_PUBLISH_SECRET}" },
        streams,
        dead_letter: { stream: "DLQ", replicas: 3, max_age: "2160h" },
        control: { replicas: 3 },
        routes,
        shutdown: { grace_period: "20s" },
      }),
    );

    const vpc = new sst.aws.Vpc("Vpc", { nat: "managed" });
    const cluster = new sst.aws.Cluster("Cluster", { vpc });
    new sst.aws.Service("Bridge", {
      cluster,
      image: { context: ".", dockerfile: "infra/Dockerfile" },
      cpu: "0.5 vCPU",
      memory: "1 GB",
      // Two tasks share every durable consumer; more on CPU. (Lag-based scaling is what KEDA does on k8s.)
      scaling: { min: 2, max: 10, cpuUtilization: 60 },
      // ECS sends SIGTERM, then SIGKILL after the task's stop timeout (30s by default): longer than the
      // bridge's shutdown.grace_period (20s), so in-flight deliveries finish or are handed back.
      // The config arrives as an environment variable and is written to a file the CLI can read.
      command: [
        "sh",
        "-c",
        'printf "%s" "$JETWAY_BRIDGE_CONFIG" > /tmp/bridge.yaml && exec node bin/jetway.ts bridge --config /tmp/bridge.yaml',
      ],
      environment: {
        JETWAY_BRIDGE_CONFIG: bridgeConfig,
        JETWAY_SECRET: jetwaySecret.value,
        JETWAY_PUBLISH_SECRET: publishSecret.value,
        NATS_URL: natsUrl.value,
        NATS_USER: natsUser.value,
        NATS_PASS: natsPassword.value,
      },
      // Public HTTPS for the publish ingress (every request signed). The health check is /healthz, the
      // process: /readyz is 503 while NATS is away, and ECS would replace every task during a NATS outage
      // the bridge rides out by reconnecting (infra/k8s uses /healthz for liveness for the same reason).
      loadBalancer: {
        domain: bridgeDomain,
        rules: [{ listen: "443/https", forward: "8080/http" }],
        health: { "8080/http": { path: "/healthz", interval: "10 seconds" } },
      },
    });

    return {
      bridge: `https://${bridgeDomain}`,
      orderApi: fns.order.url,
      auditBucket: auditLog.name,
    };
  },
});
