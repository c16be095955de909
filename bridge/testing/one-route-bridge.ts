import { type Config, parseConfig } from "../config.ts";

/** A bridge config with one route, `paced`, with `route`'s settings on a stream of its own; `subject` is in it. */
export function oneRouteBridgeConfig(natsUrl: string, fnUrl: string, route: Record<string, unknown>) {
  const id = Math.random().toString(36).slice(2, 8);
  const config: Config = parseConfig(
    {
      nats: { servers: [natsUrl] },
      http: { port: 0, host: "127.0.0.1" },
      streams: [{ name: `RL_${id}`, subjects: [`rl_${id}.>`] }],
      dead_letter: { stream: `RLDLQ_${id}`, subject_prefix: `rldlq_${id}` },
      control: { bucket: `rl-${id}` },
      routes: [{ name: "paced", stream: `RL_${id}`, url: fnUrl, ...route }],
    },
    "test",
    {},
  );
  return { config, subject: `rl_${id}.x` };
}

/** The value of a per-route gauge of the `paced` route, scraped from a bridge's /metrics. */
export async function pacedGauge(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name}\\{route="paced"\\} (\\S+)$`, "m"))?.[1]);
}
