import Chart from "./chart.js";

export const commands = {
  chart: Chart,
};
