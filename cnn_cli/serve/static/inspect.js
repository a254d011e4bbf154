// One clicked pixel, enlarged, and the arithmetic behind it from /api/pixel: the window the kernel read,
// the kernel, the sum of products with the actual numbers, the bias, the ReLU, the receptive field on the
// input, and backward the window's col2im share and one input pixel's ∂ as the sum of every share.
"use strict";

const inspect = {};
const DETAILED_CHANNELS = 4; // input channels written out in full; the others as their sums

// Enlarge one panel of a grid (any map: values, masks, gradients, weights) and mark the clicked pixel.
inspect.enlarge = function (spot, grid) {
  const [, h, w] = grid.shape;
  const size = h * w;
  const values = grid.values.slice(spot.channel * size, (spot.channel + 1) * size);
  const canvas = document.getElementById("enlarged");
  // One map alone, on its own scale (its largest magnitude), whatever the grid used.
  maps.drawGrid(canvas, { ...grid, values, shape: [1, h, w], scale: "map", cell: Math.min(224, Math.max(112, 8 * w)), labels: () => (grid.labels ? grid.labels(spot.channel) : `channel ${spot.channel}`) });
  canvas.mapGrid.channelOffset = spot.channel; // a click on it means that channel of the layer
  const limit = canvas.mapGrid.limits[0];
  const ctx = canvas.getContext("2d");
  const zoom = canvas.mapGrid.zoom;
  ctx.strokeStyle = "#f0a000";
  ctx.lineWidth = 2;
  ctx.strokeRect(spot.x * zoom + 1, spot.y * zoom + 1, zoom - 2, zoom - 2);
  maps.legend(document.getElementById("enlarged-legend"), grid.kind === "signed" ? { kind: "signed", low: -limit, high: limit, note: "this map's scale" } : { kind: grid.kind, low: grid.logRange ? grid.logRange[0] : 0, high: grid.logRange ? grid.logRange[1] : 1 });
  const label = grid.labels ? grid.labels(spot.channel) : `channel ${spot.channel}`;
  document.getElementById("enlarged-caption").textContent = `${grid.title || grid.name} · ${label} · y ${spot.y}, x ${spot.x} · ${maps.num(spot.value)}`;
  document.getElementById("inspector-card").hidden = false;
};

// A number cell; null (a tap in the zero padding, which passes nothing back) is shown as "pad".
const numCell = (v, cls) => (v === null ? cnn.el("td", { class: "padding " + (cls || ""), text: "pad" }) : cnn.el("td", { class: cls || "", text: maps.num(v), "data-value": String(v) }));

function matrix(rows, cls) {
  const table = cnn.el("table", { class: "numbers matrix " + cls });
  for (const row of rows) table.append(cnn.el("tr", {}, ...row.map((v) => numCell(v))));
  return table;
}

function valueSpan(id, v) {
  return cnn.el("b", { id, class: "value", text: maps.num(v), "data-value": String(v) });
}

// The receptive field drawn on the 28×28 input the network saw.
function drawField(input, field) {
  const canvas = document.getElementById("field");
  cnn.drawArray(canvas, input, cnn.inkColour);
  const zoom = canvas.width / input.shape[1];
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "#f0a000";
  ctx.lineWidth = 2;
  const [top, left] = [field.clipped_top, field.clipped_left];
  ctx.strokeRect(left * zoom + 1, top * zoom + 1, (field.clipped_right - left + 1) * zoom - 2, (field.clipped_bottom - top + 1) * zoom - 2);
  canvas.dataset.field = [field.top, field.bottom, field.left, field.right].join(",");
  const outside = field.top < 0 || field.left < 0 || field.clipped_bottom < field.bottom || field.clipped_right < field.right;
  document.getElementById("field-caption").textContent =
    `its receptive field on the input: rows ${field.top}…${field.bottom}, columns ${field.left}…${field.right}` + (outside ? " (partly in the zero padding)" : "");
}

inspect.show = function (answer, input) {
  const holder = document.getElementById("arithmetic");
  holder.replaceChildren();
  document.getElementById("inspector-title").textContent = `${answer.layer}[${answer.channel}] at y ${answer.y}, x ${answer.x}`;
  if (input) drawField(input, answer.receptive_field);
  const [kH, kW] = answer.kernel_size;
  const from = answer.input_layer;
  holder.append(
    cnn.el("p", {
      class: "formula",
      text: `z = b + Σ over ${answer.channels.length} channel(s) c of ${from}, Σ over the ${kH}×${kW} window: window[c] · kernel[c]   (stride ${answer.stride[0]}, padding ${answer.padding[0]}; the window starts at y ${answer.window_top}, x ${answer.window_left} of ${from})`,
    })
  );
  const blocks = cnn.el("div", { class: "channel-blocks" });
  answer.channels.slice(0, DETAILED_CHANNELS).forEach((entry, c) => {
    blocks.append(
      cnn.el(
        "div",
        { class: "channel-block", "data-channel": String(c) },
        cnn.el("div", { class: "caption", text: `channel ${c}: window of ${from} · kernel ${answer.layer}.weight[${answer.channel}, ${c}]` }),
        cnn.el("div", { class: "pair-tables" }, matrix(entry.window, "window"), cnn.el("span", { class: "op", text: "·" }), matrix(entry.kernel, "kernel"), cnn.el("span", { class: "op", text: "=" }), numCell(entry.sum, "partial")),
        cnn.el("p", { class: "written", text: entry.written + " = " + maps.num(entry.sum) })
      )
    );
  });
  holder.append(cnn.el("div", { class: "scroll" }, blocks));
  if (answer.channels.length > DETAILED_CHANNELS) {
    const sums = cnn.el("table", { class: "numbers partial-sums" }, cnn.el("tr", {}, cnn.el("th", { text: "channel" }), cnn.el("th", { text: "Σ window·kernel" })));
    answer.channels.forEach((entry, c) => sums.append(cnn.el("tr", {}, cnn.el("td", { text: String(c) }), numCell(entry.sum, "partial"))));
    holder.append(cnn.el("details", {}, cnn.el("summary", { text: `every channel's sum (${answer.channels.length})` }), cnn.el("div", { class: "scroll" }, sums)));
  }
  const channelsSum = answer.sum - answer.bias;
  const totals = cnn.el("p", { class: "totals" }, "Σ over channels = ", valueSpan("arith-channels", channelsSum), "; + bias ", valueSpan("arith-bias", answer.bias), " = z = ", valueSpan("arith-z", answer.sum), ` (the layer's own output: `, valueSpan("arith-output", answer.output), ")");
  holder.append(totals);
  if (answer.activation) {
    const relu = answer.activation.type === "relu";
    holder.append(cnn.el("p", { class: "totals" }, `${answer.activation.layer}: ${relu ? `max(0, ${maps.num(answer.sum)})` : answer.activation.type + "(z)"} = `, valueSpan("arith-activation", answer.activation.value)));
  }
  showBackward(holder, answer);
};

function showBackward(holder, answer) {
  const back = answer.backward;
  const target = answer.target === "loss" ? "loss" : "score";
  holder.append(cnn.el("h3", { text: `Backward: col2im, ∂${target}/∂${answer.input_layer} (explaining ${answer.explained})` }));
  holder.append(cnn.el("p", { class: "totals" }, `∂${target}/∂z = `, valueSpan("arith-grad", back.grad_output), `: this window adds ∂${target}/∂z · kernel to ∂${target}/∂${answer.input_layer} over the window (conv2d_backward with only this pixel's upstream gradient):`));
  const shares = cnn.el("div", { class: "channel-blocks" });
  back.share.slice(0, DETAILED_CHANNELS).forEach((rows, c) => {
    shares.append(cnn.el("div", { class: "channel-block", "data-channel": String(c) }, cnn.el("div", { class: "caption", text: `share on channel ${c}, rows ${back.window_rows[0]}…${back.window_rows.at(-1)}` }), matrix(rows, "share")));
  });
  holder.append(cnn.el("div", { class: "scroll" }, shares));
  const p = back.pixel;
  const factor = (v) => (v < 0 ? `(${maps.num(v)})` : maps.num(v));
  const terms = back.terms.slice(0, 12).map((t) => `${factor(t.grad)}·${factor(t.weight)}`);
  const more = back.terms_count > 12 ? ` + … (${back.terms_count - 12} more)` : "";
  holder.append(
    cnn.el("p", { class: "totals" }, `Windows overlap, so shares add (+=). ∂${target}/∂${answer.input_layer}[${p.channel}, ${p.y}, ${p.x}] = Σ of ${back.terms_count} shares (every window and output channel that read it) = `, valueSpan("arith-terms", back.terms_sum), "; the backward pass gives ", valueSpan("arith-input-grad", back.input_grad)),
    cnn.el("p", { class: "written", text: terms.join(" + ") + more })
  );
}
