#include "stablelearn/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "stablelearn/core/error.h"
#include "stablelearn/core/fs.h"

namespace stablelearn::report {
namespace {
constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 50;
std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}
std::string tick(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}
std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}
}  // namespace

SvgPlot::SvgPlot(double width, double height) : w_(width), h_(height) {}

void SvgPlot::set_range(double x0, double x1, double y0, double y1) {
  SL_CHECK(x1 > x0 && y1 > y0 && std::isfinite(x0 + x1 + y0 + y1), DataError, "SvgPlot: empty or non-finite range");
  x0_ = x0, x1_ = x1, y0_ = y0, y1_ = y1;
}
void SvgPlot::title(const std::string& t) { title_ = t; }
void SvgPlot::labels(const std::string& x, const std::string& y) { xlabel_ = x, ylabel_ = y; }

double SvgPlot::px(double x) const { return kLeft + (x - x0_) / (x1_ - x0_) * (w_ - kLeft - kRight); }
double SvgPlot::py(double y) const {
  double t;
  if (log_y_) t = (std::log10(std::max(y, 1e-300)) - std::log10(y0_)) / (std::log10(y1_) - std::log10(y0_));
  else t = (y - y0_) / (y1_ - y0_);
  return h_ - kBottom - t * (h_ - kTop - kBottom);
}

void SvgPlot::polyline(const std::vector<std::pair<double, double>>& pts, const std::string& colour, double width,
                       double opacity) {
  if (pts.empty()) return;
  body_ += "<polyline fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"" + num(width) + "\" stroke-opacity=\"" +
           num(opacity) + "\" points=\"";
  for (const auto& [x, y] : pts)
    if (std::isfinite(x) && std::isfinite(y)) body_ += num(px(x)) + "," + num(py(y)) + " ";
  body_ += "\"/>\n";
}

void SvgPlot::marker(double x, double y, const std::string& colour, double r) {
  body_ += "<circle cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"" + num(r) + "\" fill=\"" + colour + "\"/>\n";
}

void SvgPlot::arrow(double x, double y, double dx, double dy, const std::string& colour) {
  const double X0 = px(x), Y0 = py(y), X1 = px(x + dx), Y1 = py(y + dy);
  const double a = std::atan2(Y1 - Y0, X1 - X0), L = std::hypot(X1 - X0, Y1 - Y0), head = std::min(5.0, 0.4 * L);
  body_ += "<line x1=\"" + num(X0) + "\" y1=\"" + num(Y0) + "\" x2=\"" + num(X1) + "\" y2=\"" + num(Y1) + "\" stroke=\"" +
           colour + "\" stroke-width=\"1\"/>\n";
  body_ += "<polygon fill=\"" + colour + "\" points=\"" + num(X1) + "," + num(Y1) + " " + num(X1 - head * std::cos(a - 0.4)) +
           "," + num(Y1 - head * std::sin(a - 0.4)) + " " + num(X1 - head * std::cos(a + 0.4)) + "," +
           num(Y1 - head * std::sin(a + 0.4)) + "\"/>\n";
}

void SvgPlot::legend(const std::string& text, const std::string& colour) { legend_.emplace_back(text, colour); }

std::string SvgPlot::str() const {
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(w_) + "\" height=\"" + num(h_) +
                  "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  // Axes box and ticks.
  s += "<rect x=\"" + num(kLeft) + "\" y=\"" + num(kTop) + "\" width=\"" + num(w_ - kLeft - kRight) + "\" height=\"" +
       num(h_ - kTop - kBottom) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int k = 0; k <= 4; ++k) {
    const double xv = x0_ + (x1_ - x0_) * k / 4;
    const double yv = log_y_ ? std::pow(10, std::log10(y0_) + (std::log10(y1_) - std::log10(y0_)) * k / 4) : y0_ + (y1_ - y0_) * k / 4;
    s += "<text x=\"" + num(px(xv)) + "\" y=\"" + num(h_ - kBottom + 16) + "\" text-anchor=\"middle\">" + tick(xv) + "</text>\n";
    s += "<text x=\"" + num(kLeft - 6) + "\" y=\"" + num(py(yv) + 4) + "\" text-anchor=\"end\">" + tick(yv) + "</text>\n";
  }
  s += "<text x=\"" + num(w_ / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + escape(title_) + "</text>\n";
  s += "<text x=\"" + num((kLeft + w_ - kRight) / 2) + "\" y=\"" + num(h_ - 12) + "\" text-anchor=\"middle\">" +
       escape(xlabel_) + "</text>\n";
  s += "<text transform=\"translate(16," + num((kTop + h_ - kBottom) / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       escape(ylabel_) + "</text>\n";
  s += "<svg x=\"" + num(kLeft) + "\" y=\"" + num(kTop) + "\" width=\"" + num(w_ - kLeft - kRight) + "\" height=\"" +
       num(h_ - kTop - kBottom) + "\" viewBox=\"" + num(kLeft) + " " + num(kTop) + " " + num(w_ - kLeft - kRight) + " " +
       num(h_ - kTop - kBottom) + "\">\n" + body_ + "</svg>\n";
  double ly = kTop + 16;
  for (const auto& [text, colour] : legend_) {
    s += "<rect x=\"" + num(w_ - kRight - 190) + "\" y=\"" + num(ly - 9) + "\" width=\"12\" height=\"4\" fill=\"" + colour + "\"/>\n";
    s += "<text x=\"" + num(w_ - kRight - 172) + "\" y=\"" + num(ly) + "\">" + escape(text) + "</text>\n";
    ly += 16;
  }
  return s + "</svg>\n";
}

void SvgPlot::save(const std::string& path) const { write_file_atomic(path, str()); }

void save_sharpness_figure(const std::string& path, const SharpnessFigure& f) {
  if (f.points.empty()) return;
  double ymax = 0, x1 = std::max(1.0, f.x_end);
  for (const auto& [x, y] : f.points) {
    x1 = std::max(x1, x);
    if (std::isfinite(y)) ymax = std::max(ymax, y);
  }
  const double bound = f.two_over_lr;
  const bool show_bound = bound <= 10 * std::max(ymax, 1e-12);
  const double y1 = 1.1 * std::max(show_bound ? bound : 0.0, ymax > 0 ? ymax : 1.0);
  SvgPlot plot(800, 400);
  plot.set_range(0, x1, 0, y1);
  plot.title(f.title);
  plot.labels("iteration (tasks in sequence)", "lambda_max");
  for (double xb : f.boundaries)
    if (xb > 0 && xb < x1) plot.polyline({{xb, 0.0}, {xb, y1}}, "#999999", 1.0, 0.6);
  if (show_bound) {
    plot.polyline({{0.0, bound}, {x1, bound}}, "#d62728", 1.0);
    plot.legend("2 / lr (GD stability bound)", "#d62728");
  } else {
    char text[96];
    std::snprintf(text, sizeof text, "2 / lr = %.4g (GD bound, off the scale)", bound);
    plot.legend(text, "#d62728");
  }
  plot.polyline(f.points, "#1f77b4", 1.5);
  for (const auto& [x, y] : f.points) plot.marker(x, y, "#1f77b4", 2);
  plot.legend("lambda_max", "#1f77b4");
  plot.save(path);
}

}  // namespace stablelearn::report
