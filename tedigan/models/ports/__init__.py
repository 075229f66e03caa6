"""PyTorch ports of networks trained elsewhere, read from their own weight files (nothing here is trained).

- :mod:`~tedigan.models.ports.mobilestylegan`: MobileStyleGAN (FFHQ face generator) from the OpenVINO IR of
  ``random-face``;
- :mod:`~tedigan.models.ports.faceapi`: face-api's expression, age/gender, landmark and dlib descriptor nets;
- :mod:`~tedigan.models.ports.human`: human's emotion, faceres and MobileFaceNet nets;
- :mod:`~tedigan.models.ports.bert`: a frozen BERT encoder and tokenizer (the text model without transformers);
- :mod:`~tedigan.models.ports.tfjs`: the TensorFlow.js weight-file reader the face-api and human ports share.
"""
