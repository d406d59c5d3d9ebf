// A C++ program: the standard library's containers, strings, streams, exceptions
// and a virtual call, all still working after a restart.
#include "tick.h"

#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

struct Shape {
    virtual ~Shape() = default;
    virtual long area() const = 0;
};
struct Square : Shape {
    long side;
    explicit Square(long s) : side(s) {}
    long area() const override { return side * side; }
};

int main(int argc, char **argv) {
    int total = argc > 1 ? std::atoi(argv[1]) : 60;
    std::map<std::string, long> words;
    std::vector<std::unique_ptr<Shape>> shapes;
    ready();
    for (int i = 1; i <= total; i++) {
        if (restarted()) {
            say("RESTARTED at %d", i);
            try {
                throw std::runtime_error("thrown after restart");
            } catch (const std::exception &e) {
                if (std::string(e.what()) != "thrown after restart") FAIL("exception lost");
            }
            std::cout << "iostream works after restart" << std::endl;
        }
        std::ostringstream key;
        key << "k" << i;
        words[key.str()] = i;
        shapes.push_back(std::make_unique<Square>(i));
        long sum = 0, area = 0;
        for (auto &[k, v] : words) sum += v;
        for (auto &s : shapes) area += s->area();
        if (words.size() != size_t(i) || sum != long(i) * (i + 1) / 2 ||
            area != long(i) * (i + 1) * (2 * i + 1) / 6)
            FAIL("C++ state lost at step %d", i);
        say("TICK %d", i);
        pause_ms(25);
    }
    say("DONE");
}
