import { createHash } from "node:crypto";

export const handler = async (event, context) => {
  console.log("hello from node");
  return {
    message: `Hello, ${event.name ?? "world"}!`,
    node: process.versions.node.split(".")[0],
    sha: createHash("sha256").update("lambdabox").digest("hex").slice(0, 8),
    intl: new Intl.NumberFormat("de-DE").format(1234.5),
    requestId: context.awsRequestId.length > 0,
  };
};
