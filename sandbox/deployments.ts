/** A one-service Podman Deployment, the shape the demo, the e2e stories and the benches apply. */
import { API_VERSION, type Deployment, type LabelSelector } from "../core/mod.ts";

export function singleServiceDeployment(options: {
  name: string;
  namespace?: string;
  image: string;
  selector: LabelSelector;
  service?: string;
  env?: Record<string, string>;
}): Deployment {
  return {
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name: options.name, namespace: options.namespace ?? "default" },
    spec: {
      targetSelector: options.selector,
      score: {
        type: "PodmanV0",
        data: {
          services: [{
            name: options.service ?? "web",
            image: options.image,
            ports: [],
            env: Object.entries(options.env ?? {}).map(([name, value]) => ({ name, value })),
            volumes: [],
            restartPolicy: "unless-stopped",
          }],
        },
      },
      rollout: { strategy: "Immediate" },
    },
  };
}
