// Minimal SVG plots (line charts, trajectories, vector fields) written by the project itself, so
// figures are viewable in any browser without Python or gnuplot. Torch-free.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace stablelearn::report {

/// A 2-D plot in data coordinates, mapped to a w x h pixel canvas with margins and axes.
class SvgPlot {
 public:
  SvgPlot(double width = 640, double height = 480);
  /// Data range; call before drawing (or let fit() choose it from points).
  void set_range(double x0, double x1, double y0, double y1);
  void title(const std::string& text);
  void labels(const std::string& x, const std::string& y);
  void polyline(const std::vector<std::pair<double, double>>& pts, const std::string& colour, double width = 1.5,
                double opacity = 1.0);
  void marker(double x, double y, const std::string& colour, double radius = 4);
  /// An arrow from (x, y) along (dx, dy) in data units.
  void arrow(double x, double y, double dx, double dy, const std::string& colour);
  void legend(const std::string& text, const std::string& colour);
  /// Log-scale y axis (values must be > 0).
  void log_y(bool on) { log_y_ = on; }
  std::string str() const;
  void save(const std::string& path) const;

 private:
  double px(double x) const;
  double py(double y) const;
  double w_, h_, x0_ = 0, x1_ = 1, y0_ = 0, y1_ = 1;
  bool log_y_ = false;
  std::string title_, xlabel_, ylabel_, body_;
  std::vector<std::pair<std::string, std::string>> legend_;
};

/// The sharpness figure of a run's [diagnostics] curvature monitor (`cl run` and `lfd train`):
/// λ_max at each measured iteration (line and markers), grey task boundaries, and the gradient-
/// descent stability bound 2/lr — drawn when it is within 10× of the data, else named in the legend
/// (Adam's small lr puts it off any useful scale). Non-finite λ values are drawn but do not set the
/// scale. Nothing is written without points.
struct SharpnessFigure {
  std::vector<std::pair<double, double>> points;  ///< (iteration, λ_max)
  std::vector<double> boundaries;                 ///< iterations at which a new task starts
  double x_end = 0;                               ///< right end of the x axis (at least the last point)
  double two_over_lr = 0;
  std::string title;
};
void save_sharpness_figure(const std::string& path, const SharpnessFigure& figure);

}  // namespace stablelearn::report
